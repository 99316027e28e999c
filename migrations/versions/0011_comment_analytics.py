"""comment analytics (topics, sentiment, models), follow-up cases, KPI alerts and their emails

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-02 18:15:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('comment_model',
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('n_docs', sa.Integer(), nullable=False),
    sa.Column('fitted_at', sa.DateTime(), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.CheckConstraint("kind IN ('topics', 'sentiment')", name=op.f('ck_comment_model_kind')),
    sa.PrimaryKeyConstraint('language', 'kind', name=op.f('pk_comment_model'))
    )
    op.create_table('comment_topic',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('terms', sa.String(length=500), nullable=False, comment='Top terms, comma-separated'),
    sa.Column('weights', sa.Text(), nullable=False, comment='JSON {term: weight}, to match refits'),
    sa.Column('label', sa.String(length=200), nullable=True, comment="An admin's label; NULL: the top terms"),
    sa.Column('merged_into', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False, comment="Part of the language's current topic model"),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['merged_into'], ['comment_topic.id'], name=op.f('fk_comment_topic_merged_into_comment_topic')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comment_topic'))
    )
    with op.batch_alter_table('comment_topic', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comment_topic_merged_into'), ['merged_into'], unique=False)

    op.create_table('comment_analysis',
    sa.Column('response_pk', sa.Integer(), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=False, comment='SHA-256 of the comment analysed'),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('lemmas', sa.Text(), nullable=True, comment='Content lemmas, space-separated'),
    sa.Column('topic_id', sa.Integer(), nullable=True),
    sa.Column('topic_weight', sa.Float(), nullable=True),
    sa.Column('sentiment', sa.Float(), nullable=True, comment='-1 (negative) to 1 (positive)'),
    sa.Column('sentiment_label', sa.String(length=8), nullable=True),
    sa.Column('analysed_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("sentiment_label IN ('negative', 'neutral', 'positive')", name=op.f('ck_comment_analysis_sentiment_label')),
    sa.ForeignKeyConstraint(['response_pk'], ['survey_response.id'], name=op.f('fk_comment_analysis_response_pk_survey_response'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['comment_topic.id'], name=op.f('fk_comment_analysis_topic_id_comment_topic')),
    sa.PrimaryKeyConstraint('response_pk', name=op.f('pk_comment_analysis'))
    )
    with op.batch_alter_table('comment_analysis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comment_analysis_topic_id'), ['topic_id'], unique=False)

    op.create_table('kpi_alert',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('kpi', sa.String(length=32), nullable=True, comment='KPI key (nps, csat, ...); NULL: source silence only'),
    sa.Column('on_change', sa.Boolean(), nullable=False),
    sa.Column('on_target', sa.Boolean(), nullable=False),
    sa.Column('silent_days', sa.Integer(), nullable=True, comment='Alert when a source has no new answer this long'),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('silent_days IS NULL OR silent_days >= 1', name=op.f('ck_kpi_alert_silent_days')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscription.id'], name=op.f('fk_kpi_alert_subscription_id_subscription'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kpi_alert'))
    )
    with op.batch_alter_table('kpi_alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kpi_alert_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('alert_event',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False, comment='e.g. nps:change:2026-11'),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed')", name=op.f('ck_alert_event_status')),
    sa.ForeignKeyConstraint(['alert_id'], ['kpi_alert.id'], name=op.f('fk_alert_event_alert_id_kpi_alert'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_event')),
    sa.UniqueConstraint('alert_id', 'key', name=op.f('uq_alert_event_alert_id_key'))
    )

    op.create_table('case_notice',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('cases', sa.Text(), nullable=True, comment='Case ids in the email, comma-separated'),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=True),
    sa.CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed')", name=op.f('ck_case_notice_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_notice')),
    sa.UniqueConstraint('email', 'key', name=op.f('uq_case_notice_email_key'))
    )
    op.create_table('follow_up_case',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('response_pk', sa.Integer(), nullable=False),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('owner_email', sa.String(length=320), nullable=True, comment='Kept when the user is removed'),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=320), nullable=True),
    sa.Column('notified_at', sa.DateTime(), nullable=True, comment='When the owner was emailed about it'),
    sa.CheckConstraint("reason IN ('detractor', 'csat_low')", name=op.f('ck_follow_up_case_reason')),
    sa.CheckConstraint("status IN ('open', 'contacted', 'resolved')", name=op.f('ck_follow_up_case_status')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_follow_up_case_org_unit_id_org_unit')),
    sa.ForeignKeyConstraint(['owner_id'], ['app_user.id'], name=op.f('fk_follow_up_case_owner_id_app_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['response_pk'], ['survey_response.id'], name=op.f('fk_follow_up_case_response_pk_survey_response'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_up_case')),
    sa.UniqueConstraint('response_pk', name=op.f('uq_follow_up_case_response_pk'))
    )
    with op.batch_alter_table('follow_up_case', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_follow_up_case_org_unit_id'), ['org_unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_follow_up_case_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_follow_up_case_status_due', ['status', 'due_at'], unique=False)



def downgrade() -> None:
    op.drop_table('alert_event')
    with op.batch_alter_table('kpi_alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kpi_alert_subscription_id'))

    op.drop_table('kpi_alert')
    with op.batch_alter_table('follow_up_case', schema=None) as batch_op:
        batch_op.drop_index('ix_follow_up_case_status_due')
        batch_op.drop_index(batch_op.f('ix_follow_up_case_owner_id'))
        batch_op.drop_index(batch_op.f('ix_follow_up_case_org_unit_id'))

    op.drop_table('follow_up_case')
    op.drop_table('case_notice')
    with op.batch_alter_table('comment_analysis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comment_analysis_topic_id'))

    op.drop_table('comment_analysis')
    with op.batch_alter_table('comment_topic', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comment_topic_merged_into'))

    op.drop_table('comment_topic')
    op.drop_table('comment_model')
