"""summary state: whether answer revenue may lack rows, so a run with nothing new skips the
search for them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 02:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        'summary_state',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('done_version', sa.Integer(), nullable=True),
        sa.Column('params', sa.String(length=64), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_summary_state')),
    )
    # Pending: the first run after the upgrade looks for missing rows once.
    op.bulk_insert(state, [{'name': 'answer_revenue', 'version': 1}])


def downgrade() -> None:
    op.drop_table('summary_state')
