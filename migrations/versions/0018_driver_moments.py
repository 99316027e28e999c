"""key-driver sums per unit, month, outcome and set of rated attributes, kept by the ETL so
the drivers page need not pivot every rating of its window

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 01:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Left empty: readers count from the ratings until a survey load (for its months) or
    # `python -m etl rollup` fills it.
    op.create_table(
        'agg_driver_moments',
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('org_unit_id', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=8), nullable=False),
        sa.Column('pattern', sa.String(length=1000), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('moments', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'],
                                name=op.f('fk_agg_driver_moments_org_unit_id_org_unit')),
        sa.PrimaryKeyConstraint('month', 'org_unit_id', 'outcome', 'pattern',
                                name=op.f('pk_agg_driver_moments')),
    )


def downgrade() -> None:
    op.drop_table('agg_driver_moments')
