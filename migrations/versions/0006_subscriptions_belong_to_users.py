"""subscriptions belong to users; allowed recipient domains

Each subscription gets the user whose current scope its PDF is rendered in. Existing
subscriptions are given the user with the same email where one exists; the others keep
user_id NULL and are refused at send time (the delivery says why) until an admin assigns
them (`python -m dashboard subscriptions assign ID --user EMAIL`). A NULL scope now means
"the user's whole scope, as it is at send time".

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.alter_column('email', existing_type=sa.String(length=320),
                              existing_nullable=False, comment='Recipient address')
        batch_op.alter_column('scope', existing_type=sa.String(length=500), nullable=True,
                              comment="Org unit ids, comma-separated; NULL: the user's whole "
                                      "current scope",
                              existing_comment='Org unit ids, comma-separated')
        batch_op.create_index(batch_op.f('ix_subscription_user_id'), ['user_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_subscription_user_id_app_user'), 'app_user',
                                    ['user_id'], ['id'], ondelete='CASCADE')
    # Emails of users are stored lower-cased; subscriptions kept the local part's case.
    op.execute(sa.text(
        "UPDATE subscription SET user_id = (SELECT app_user.id FROM app_user "
        "WHERE app_user.email = lower(subscription.email))"))
    op.create_table('allowed_domain',
    sa.Column('domain', sa.String(length=253), nullable=False, comment='Lower-cased, e.g. example.com'),
    sa.Column('added_by', sa.String(length=320), nullable=True),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('domain', name=op.f('pk_allowed_domain'))
    )


def downgrade() -> None:
    op.drop_table('allowed_domain')
    # A scope that followed the user cannot be kept as NULL: those rows go.
    op.execute(sa.text("DELETE FROM subscription WHERE scope IS NULL"))
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_subscription_user_id_app_user'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_subscription_user_id'))
        batch_op.alter_column('scope', existing_type=sa.String(length=500), nullable=False,
                              comment='Org unit ids, comma-separated',
                              existing_comment="Org unit ids, comma-separated; NULL: the "
                                               "user's whole current scope")
        batch_op.alter_column('email', existing_type=sa.String(length=320),
                              existing_nullable=False, comment=None,
                              existing_comment='Recipient address')
        batch_op.drop_column('user_id')
