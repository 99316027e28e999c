"""users, sessions and the audit log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False, comment='Lower-cased'),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('scope', sa.String(length=2000), nullable=True, comment='Org unit ids, comma-separated; NULL: every unit'),
    sa.Column('password_hash', sa.String(length=255), nullable=True, comment='argon2id; NULL for single sign-on users'),
    sa.Column('auth_source', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("role IN ('executive', 'manager', 'admin')", name=op.f('ck_app_user_role')),
    sa.CheckConstraint("auth_source IN ('local', 'oidc', 'header')", name=op.f('ck_app_user_auth_source')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('email', name=op.f('uq_app_user_email'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=320), nullable=True, comment='Email of the user, or what acted (scheduler, cli)'),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.CheckConstraint("outcome IN ('ok', 'failed', 'denied')", name=op.f('ck_audit_log_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_action_at', 'audit_log', ['action', 'at'], unique=False)
    op.create_index(op.f('ix_audit_log_at'), 'audit_log', ['at'], unique=False)
    op.create_table('user_session',
    sa.Column('id', sa.String(length=64), nullable=False, comment="SHA-256 of the cookie's token"),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_user_session_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_session'))
    )
    op.create_index(op.f('ix_user_session_user_id'), 'user_session', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_user_session_user_id'), table_name='user_session')
    op.drop_table('user_session')
    op.drop_index(op.f('ix_audit_log_at'), table_name='audit_log')
    op.drop_index('ix_audit_log_action_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('app_user')
