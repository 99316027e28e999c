"""drop the single-column index on purchases by customer: the (customer_id, occurred_at)
index of 0003 answers every lookup it did, and each index is upkeep on every loaded sale

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 22:40:00
"""
from __future__ import annotations

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_transaction_customer_id')


def downgrade() -> None:
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_transaction_customer_id', ['customer_id'], unique=False)
