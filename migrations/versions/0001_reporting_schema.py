"""reporting schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 06:31:37.489542
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('etl_run',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows_read', sa.Integer(), nullable=False),
    sa.Column('rows_inserted', sa.Integer(), nullable=False),
    sa.Column('rows_updated', sa.Integer(), nullable=False),
    sa.Column('rows_quarantined', sa.Integer(), nullable=False),
    sa.Column('rows_skipped', sa.Integer(), nullable=False),
    sa.Column('watermark', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'success', 'failed')", name=op.f('ck_etl_run_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_etl_run'))
    )
    with op.batch_alter_table('etl_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_etl_run_source'), ['source'], unique=False)

    op.create_table('org_unit',
    sa.Column('id', sa.String(length=64), nullable=False, comment='Code from the source, e.g. S01'),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('company', 'region', 'store', 'team')", name=op.f('ck_org_unit_kind')),
    sa.ForeignKeyConstraint(['parent_id'], ['org_unit.id'], name=op.f('fk_org_unit_parent_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_unit'))
    )
    with op.batch_alter_table('org_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_org_unit_parent_id'), ['parent_id'], unique=False)

    op.create_table('source_state',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('watermark', sa.String(length=64), nullable=True, comment='Highest watermark value loaded, as text'),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_source_state'))
    )
    op.create_table('customer',
    sa.Column('id', sa.String(length=64), nullable=False, comment='Member or customer number'),
    sa.Column('segment', sa.String(length=64), nullable=True),
    sa.Column('tier', sa.String(length=32), nullable=True),
    sa.Column('loyalty_member', sa.Boolean(), nullable=False),
    sa.Column('enrolled_at', sa.Date(), nullable=True),
    sa.Column('home_org_unit_id', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['home_org_unit_id'], ['org_unit.id'], name=op.f('fk_customer_home_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer'))
    )
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_home_org_unit_id'), ['home_org_unit_id'], unique=False)

    op.create_table('engagement_response',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('respondent_key', sa.String(length=64), nullable=False, comment='Salted hash, never the id'),
    sa.Column('wave', sa.Date(), nullable=False),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('enps', sa.SmallInteger(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('enps BETWEEN 0 AND 10', name=op.f('ck_engagement_response_enps_range')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_engagement_response_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_engagement_response')),
    sa.UniqueConstraint('source', 'respondent_key', 'wave', name=op.f('uq_engagement_response_source_respondent_key_wave'))
    )
    with op.batch_alter_table('engagement_response', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engagement_response_org_unit_id'), ['org_unit_id'], unique=False)

    op.create_table('headcount',
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.Date(), nullable=False),
    sa.Column('headcount', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('headcount >= 0', name=op.f('ck_headcount_headcount_positive')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_headcount_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('org_unit_id', 'wave', name=op.f('pk_headcount'))
    )
    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('file', sa.Text(), nullable=True),
    sa.Column('line', sa.Integer(), nullable=True, comment='Line (file) or row number (table) in the source'),
    sa.Column('field', sa.String(length=128), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=True, comment='The whole source row as JSON'),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['etl_run.id'], name=op.f('fk_quarantine_run_id_etl_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine'))
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quarantine_source'), ['source'], unique=False)

    op.create_table('source_file',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['etl_run.id'], name=op.f('fk_source_file_run_id_etl_run')),
    sa.PrimaryKeyConstraint('source', 'path', name=op.f('pk_source_file'))
    )
    op.create_table('survey_response',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('response_id', sa.String(length=128), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('survey_kind', sa.String(length=16), nullable=False),
    sa.Column('touchpoint', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('device', sa.String(length=32), nullable=True),
    sa.Column('interaction', sa.String(length=16), nullable=True),
    sa.Column('nps', sa.SmallInteger(), nullable=True),
    sa.Column('csat', sa.SmallInteger(), nullable=True),
    sa.Column('ces', sa.SmallInteger(), nullable=True),
    sa.Column('wait_minutes', sa.Float(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("interaction IS NULL OR interaction IN ('self_service', 'assisted')", name=op.f('ck_survey_response_interaction')),
    sa.CheckConstraint("survey_kind IN ('relationship', 'transactional')", name=op.f('ck_survey_response_survey_kind')),
    sa.CheckConstraint('ces BETWEEN 1 AND 7', name=op.f('ck_survey_response_ces_range')),
    sa.CheckConstraint('csat BETWEEN 1 AND 5', name=op.f('ck_survey_response_csat_range')),
    sa.CheckConstraint('nps BETWEEN 0 AND 10', name=op.f('ck_survey_response_nps_range')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_survey_response_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_response')),
    sa.UniqueConstraint('source', 'response_id', name=op.f('uq_survey_response_source_response_id'))
    )
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_response_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_survey_response_submitted_unit', ['submitted_at', 'org_unit_id'], unique=False)

    op.create_table('engagement_score',
    sa.Column('response_pk', sa.Integer(), nullable=False),
    sa.Column('item', sa.String(length=64), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.CheckConstraint('score BETWEEN 1 AND 5', name=op.f('ck_engagement_score_score_range')),
    sa.ForeignKeyConstraint(['response_pk'], ['engagement_response.id'], name=op.f('fk_engagement_score_response_pk_engagement_response'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('response_pk', 'item', name=op.f('pk_engagement_score'))
    )
    op.create_table('loyalty_transaction',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('txn_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2, asdecimal=False), nullable=False),
    sa.Column('points_earned', sa.Integer(), nullable=False),
    sa.Column('points_redeemed', sa.Integer(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_loyalty_transaction_customer_id_customer')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_loyalty_transaction_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_transaction')),
    sa.UniqueConstraint('source', 'txn_id', name=op.f('uq_loyalty_transaction_source_txn_id'))
    )
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loyalty_transaction_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_loyalty_transaction_occurred_unit', ['occurred_at', 'org_unit_id'], unique=False)

    op.create_table('survey_rating',
    sa.Column('response_pk', sa.Integer(), nullable=False),
    sa.Column('attribute', sa.String(length=64), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=False),
    sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_survey_rating_rating_range')),
    sa.ForeignKeyConstraint(['response_pk'], ['survey_response.id'], name=op.f('fk_survey_rating_response_pk_survey_response'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('response_pk', 'attribute', name=op.f('pk_survey_rating'))
    )


def downgrade() -> None:
    op.drop_table('survey_rating')
    with op.batch_alter_table('loyalty_transaction', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_transaction_occurred_unit')
        batch_op.drop_index(batch_op.f('ix_loyalty_transaction_customer_id'))

    op.drop_table('loyalty_transaction')
    op.drop_table('engagement_score')
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_response_submitted_unit')
        batch_op.drop_index(batch_op.f('ix_survey_response_customer_id'))

    op.drop_table('survey_response')
    op.drop_table('source_file')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_source'))
        batch_op.drop_index(batch_op.f('ix_quarantine_run_id'))

    op.drop_table('quarantine')
    op.drop_table('headcount')
    with op.batch_alter_table('engagement_response', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engagement_response_org_unit_id'))

    op.drop_table('engagement_response')
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_home_org_unit_id'))

    op.drop_table('customer')
    op.drop_table('source_state')
    with op.batch_alter_table('org_unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_org_unit_parent_id'))

    op.drop_table('org_unit')
    with op.batch_alter_table('etl_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_etl_run_source'))

    op.drop_table('etl_run')
