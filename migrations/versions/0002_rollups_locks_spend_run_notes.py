"""rollups, locks, spend, run notes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:44:03.038225
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('etl_lock',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False, comment='host:pid of the process running it'),
    sa.Column('acquired_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_etl_lock'))
    )
    op.create_table('agg_engagement',
    sa.Column('wave', sa.Date(), nullable=False),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('item', sa.String(length=64), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('favourable', sa.Integer(), nullable=False),
    sa.Column('score_sum', sa.Integer(), nullable=False),
    sa.Column('score_sumsq', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_agg_engagement_org_unit_id_org_unit'))
    )
    with op.batch_alter_table('agg_engagement', schema=None) as batch_op:
        batch_op.create_index('ix_agg_engagement_wave_unit', ['wave', 'org_unit_id'], unique=False)

    op.create_table('agg_engagement_unit',
    sa.Column('wave', sa.Date(), nullable=False),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('respondents', sa.Integer(), nullable=False),
    sa.Column('enps_n', sa.Integer(), nullable=False),
    sa.Column('enps_promoters', sa.Integer(), nullable=False),
    sa.Column('enps_detractors', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_agg_engagement_unit_org_unit_id_org_unit'))
    )
    with op.batch_alter_table('agg_engagement_unit', schema=None) as batch_op:
        batch_op.create_index('ix_agg_engagement_unit_wave_unit', ['wave', 'org_unit_id'], unique=False)

    op.create_table('agg_survey_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('segment', sa.String(length=64), nullable=True),
    sa.Column('survey_kind', sa.String(length=16), nullable=True),
    sa.Column('touchpoint', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('device', sa.String(length=32), nullable=True),
    sa.Column('interaction', sa.String(length=16), nullable=True),
    sa.Column('responses', sa.Integer(), nullable=False),
    sa.Column('nps_n', sa.Integer(), nullable=False),
    sa.Column('nps_promoters', sa.Integer(), nullable=False),
    sa.Column('nps_detractors', sa.Integer(), nullable=False),
    sa.Column('csat_n', sa.Integer(), nullable=False),
    sa.Column('csat_top2', sa.Integer(), nullable=False),
    sa.Column('csat_sum', sa.Integer(), nullable=False),
    sa.Column('ces_n', sa.Integer(), nullable=False),
    sa.Column('ces_sum', sa.Integer(), nullable=False),
    sa.Column('ces_sumsq', sa.Integer(), nullable=False),
    sa.Column('ces_agree', sa.Integer(), nullable=False),
    sa.Column('spend_n', sa.Integer(), nullable=False),
    sa.Column('spend_sum', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_agg_survey_daily_org_unit_id_org_unit'))
    )
    with op.batch_alter_table('agg_survey_daily', schema=None) as batch_op:
        batch_op.create_index('ix_agg_survey_daily_month_unit', ['month', 'org_unit_id'], unique=False)

    op.create_table('agg_txn_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('org_unit_id', sa.String(length=64), nullable=False),
    sa.Column('segment', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('member', sa.Boolean(), nullable=False),
    sa.Column('txns', sa.Integer(), nullable=False),
    sa.Column('revenue', sa.Float(), nullable=False),
    sa.Column('revenue_sumsq', sa.Float(), nullable=False),
    sa.Column('points_earned', sa.Integer(), nullable=False),
    sa.Column('points_redeemed', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_agg_txn_daily_org_unit_id_org_unit'))
    )
    with op.batch_alter_table('agg_txn_daily', schema=None) as batch_op:
        batch_op.create_index('ix_agg_txn_daily_month_unit', ['month', 'org_unit_id'], unique=False)

    with op.batch_alter_table('etl_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=True, comment='JSON: excluded rows by reason, files skipped, units created'))

    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spend', sa.Numeric(precision=14, scale=2, asdecimal=False), nullable=True, comment='Amount on the receipt the survey was about, if known'))



def downgrade() -> None:
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_column('spend')

    with op.batch_alter_table('etl_run', schema=None) as batch_op:
        batch_op.drop_column('notes')

    with op.batch_alter_table('agg_txn_daily', schema=None) as batch_op:
        batch_op.drop_index('ix_agg_txn_daily_month_unit')

    op.drop_table('agg_txn_daily')
    with op.batch_alter_table('agg_survey_daily', schema=None) as batch_op:
        batch_op.drop_index('ix_agg_survey_daily_month_unit')

    op.drop_table('agg_survey_daily')
    with op.batch_alter_table('agg_engagement_unit', schema=None) as batch_op:
        batch_op.drop_index('ix_agg_engagement_unit_wave_unit')

    op.drop_table('agg_engagement_unit')
    with op.batch_alter_table('agg_engagement', schema=None) as batch_op:
        batch_op.drop_index('ix_agg_engagement_wave_unit')

    op.drop_table('agg_engagement')
    op.drop_table('etl_lock')
