"""answer revenue: each known customer's NPS answer with the purchases after it, kept by
the ETL so the revenue page need not join every answer to the sales

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 22:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'answer_revenue',
        sa.Column('response_pk', sa.Integer(), nullable=False),
        sa.Column('window_days', sa.SmallInteger(), nullable=False),
        sa.Column('churn_days', sa.SmallInteger(), nullable=False),
        sa.Column('revenue', sa.Numeric(precision=14, scale=2, asdecimal=False), nullable=False,
                  comment='Purchases in the window_days after'),
        sa.Column('purchases', sa.Integer(), nullable=False, comment='Their number'),
        sa.Column('active', sa.SmallInteger(), nullable=False,
                  comment='1: a purchase in the churn_days after; 0: churned'),
        sa.ForeignKeyConstraint(['response_pk'], ['survey_response.id'],
                                name=op.f('fk_answer_revenue_response_pk_survey_response'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('response_pk', name=op.f('pk_answer_revenue')),
    )


def downgrade() -> None:
    op.drop_table('answer_revenue')
