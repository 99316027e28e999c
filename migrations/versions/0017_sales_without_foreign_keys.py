"""loyalty_transaction without foreign keys: the ETL checks a batch's customers and org
units set-based before writing it; the per-row checks (and the customer row locks they
take) were 44% of the time to insert a batch on PostgreSQL

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 01:40:00
"""
from __future__ import annotations

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

KEYS = (('fk_loyalty_transaction_customer_id_customer', 'customer', 'customer_id'),
        ('fk_loyalty_transaction_org_unit_id_org_unit', 'org_unit', 'org_unit_id'))


def upgrade() -> None:
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        for name, _, _ in KEYS:
            batch_op.drop_constraint(name, type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        for name, table, column in KEYS:
            batch_op.create_foreign_key(name, table, [column], ['id'])
