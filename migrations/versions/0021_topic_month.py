"""comments summed per month, unit and topic, so the topics chart and the comment count need
not read every comment of their window

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 04:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agg_topic_month',
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('org_unit_id', sa.String(length=64), nullable=False),
        sa.Column('topic_id', sa.Integer(), nullable=False,
                  comment='Own topic (merges apply on read); 0: none'),
        sa.Column('comments', sa.Integer(), nullable=False),
        sa.Column('sentiment_n', sa.Integer(), nullable=False),
        sa.Column('sentiment_sum', sa.Float(), nullable=False),
        sa.Column('negative', sa.Integer(), nullable=False),
        sa.Column('toned', sa.Integer(), nullable=False),
        sa.Column('nps_n', sa.Integer(), nullable=False),
        sa.Column('promoters', sa.Integer(), nullable=False),
        sa.Column('detractors', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'],
                                name=op.f('fk_agg_topic_month_org_unit_id_org_unit')),
        sa.PrimaryKeyConstraint('month', 'org_unit_id', 'topic_id',
                                name=op.f('pk_agg_topic_month')),
    )
    # Stale until the next comment analysis (or `python -m etl rollup`) fills it: the
    # topics chart counts from the comments until then.
    state = sa.table('summary_state', sa.column('name', sa.String),
                     sa.column('version', sa.Integer))
    op.bulk_insert(state, [{'name': 'topic_month', 'version': 1}])


def downgrade() -> None:
    op.execute("DELETE FROM summary_state WHERE name = 'topic_month'")
    op.drop_table('agg_topic_month')
