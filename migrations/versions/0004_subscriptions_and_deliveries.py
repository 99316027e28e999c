"""subscriptions and deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 07:15:46.252338
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('subscription',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('scope', sa.String(length=500), nullable=False, comment='Org unit ids, comma-separated'),
    sa.Column('paper', sa.String(length=10), nullable=False),
    sa.Column('landscape', sa.Boolean(), nullable=False),
    sa.Column('schedule', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("paper IN ('A4', 'Letter')", name=op.f('ck_subscription_paper')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription')),
    sa.UniqueConstraint('email', 'scope', name=op.f('uq_subscription_email_scope'))
    )
    op.create_table('delivery',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=True),
    sa.Column('stale_data', sa.Boolean(), nullable=False),
    sa.CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed')", name=op.f('ck_delivery_status')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscription.id'], name=op.f('fk_delivery_subscription_id_subscription'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery')),
    sa.UniqueConstraint('subscription_id', 'period', name=op.f('uq_delivery_subscription_id_period'))
    )


def downgrade() -> None:
    op.drop_table('delivery')
    op.drop_table('subscription')
