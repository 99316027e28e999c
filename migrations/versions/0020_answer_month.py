"""answer revenue and the answers' spend and visits summed per month, unit and NPS score,
so the revenue page need not join every answer of its window

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 04:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def _moments(name: str) -> list[sa.Column]:
    return [sa.Column(f'{name}_n', sa.Integer(), nullable=False),
            sa.Column(f'{name}_sum', sa.Float(), nullable=False),
            sa.Column(f'{name}_sumsq', sa.Float(), nullable=False)]


def upgrade() -> None:
    # Left empty: readers count from the answers until the next ETL run's answer revenue
    # completion finds every month missing and fills them.
    op.create_table(
        'agg_answer_month',
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('org_unit_id', sa.String(length=64), nullable=False),
        sa.Column('nps', sa.SmallInteger(), nullable=False),
        sa.Column('responses', sa.Integer(), nullable=False),
        sa.Column('linked', sa.Integer(), nullable=False),
        *_moments('spend'), *_moments('visits'), *_moments('value'),
        sa.Column('window_days', sa.SmallInteger(), nullable=False),
        sa.Column('churn_days', sa.SmallInteger(), nullable=False),
        sa.Column('kept', sa.Integer(), nullable=False),
        sa.Column('churned', sa.Integer(), nullable=False),
        *_moments('revenue'), *_moments('purchases'), *_moments('ticket'),
        sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'],
                                name=op.f('fk_agg_answer_month_org_unit_id_org_unit')),
        sa.PrimaryKeyConstraint('month', 'org_unit_id', 'nps',
                                name=op.f('pk_agg_answer_month')),
    )


def downgrade() -> None:
    op.drop_table('agg_answer_month')
