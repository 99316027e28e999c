"""index customer purchases by time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:11:04.276359
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_transaction_customer_occurred', ['customer_id', 'occurred_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_transaction_customer_occurred')

