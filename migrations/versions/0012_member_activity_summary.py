"""member activity summary: active members and retention per month, unit subtree, segment
and channel, counted by the ETL (distinct people cannot be re-aggregated from other rollups)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 18:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agg_member_activity',
    sa.Column('month', sa.String(length=7), nullable=False, comment='Counted as of the end of this month'),
    sa.Column('window_days', sa.SmallInteger(), nullable=False),
    sa.Column('scope_unit', sa.String(length=64), nullable=False, comment="'*': every unit"),
    sa.Column('segment', sa.String(length=64), nullable=False, comment="'': any segment"),
    sa.Column('channel', sa.String(length=32), nullable=False, comment="'': any channel"),
    sa.Column('active', sa.Integer(), nullable=False),
    sa.Column('active_before', sa.Integer(), nullable=False, comment='Active as of the end of the month before'),
    sa.Column('retained', sa.Integer(), nullable=False, comment='Active at both ends'),
    sa.Column('earning', sa.Integer(), nullable=False, comment='Members who earned points during the month'),
    sa.Column('org_tree', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('month', 'window_days', 'scope_unit', 'segment', 'channel', name=op.f('pk_agg_member_activity'))
    )


def downgrade() -> None:
    op.drop_table('agg_member_activity')
