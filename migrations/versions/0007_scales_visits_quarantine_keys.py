"""rating scales, visits, quarantine row keys and source columns, run warnings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

SCALE = ('scale_min', 'scale_max', 'favourable')


def upgrade() -> None:
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.add_column(sa.Column('visits', sa.Float(), nullable=True, comment='Visits the customer says they make (per year, as asked)'))
        batch_op.add_column(sa.Column('csat_min', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('csat_max', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('csat_top', sa.SmallInteger(), nullable=True, comment='Lowest favourable CSAT answer'))
        batch_op.add_column(sa.Column('ces_min', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('ces_max', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('ces_top', sa.SmallInteger(), nullable=True, comment="Lowest 'easy' CES answer"))
        batch_op.drop_constraint(op.f('ck_survey_response_csat_range'), type_='check')
        batch_op.drop_constraint(op.f('ck_survey_response_ces_range'), type_='check')
        batch_op.create_check_constraint('csat_range', 'csat BETWEEN 0 AND 10')
        batch_op.create_check_constraint('ces_range', 'ces BETWEEN 0 AND 10')
    for table, col, ck in (('survey_rating', 'rating', 'rating_range'),
                           ('engagement_score', 'score', 'score_range')):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('scale_min', sa.SmallInteger(), nullable=True, comment='NULL: the default 1-5 scale'))
            batch_op.add_column(sa.Column('scale_max', sa.SmallInteger(), nullable=True))
            batch_op.add_column(sa.Column('favourable', sa.SmallInteger(), nullable=True, comment=f'Lowest favourable {col} (NULL: 4)'))
            batch_op.drop_constraint(op.f(f'ck_{table}_{ck}'), type_='check')
            batch_op.create_check_constraint(ck, f'{col} BETWEEN 0 AND 10')
    with op.batch_alter_table('agg_survey_daily', schema=None) as batch_op:
        batch_op.alter_column('csat_sum', existing_type=sa.Integer(), type_=sa.Float(), existing_nullable=False, comment='Rescaled onto 1-5')
        batch_op.alter_column('ces_sum', existing_type=sa.Integer(), type_=sa.Float(), existing_nullable=False, comment='Rescaled onto 1-7')
        batch_op.alter_column('ces_sumsq', existing_type=sa.Integer(), type_=sa.Float(), existing_nullable=False)
    with op.batch_alter_table('agg_engagement', schema=None) as batch_op:
        batch_op.alter_column('score_sum', existing_type=sa.Integer(), type_=sa.Float(), existing_nullable=False, comment='Rescaled onto 1-5')
        batch_op.alter_column('score_sumsq', existing_type=sa.Integer(), type_=sa.Float(), existing_nullable=False)
    with op.batch_alter_table('etl_run', schema=None) as batch_op:
        batch_op.alter_column('rows_skipped', existing_type=sa.Integer(), existing_nullable=False, comment='rows_excluded + rows_unchanged')
        batch_op.add_column(sa.Column('rows_excluded', sa.Integer(), server_default='0', nullable=False, comment='Not answers: previews, tests, spam, unfinished (see notes)'))
        batch_op.add_column(sa.Column('rows_unchanged', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(op.f('ck_etl_run_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('running', 'success', 'warning', 'failed')")
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('column', sa.Text(), nullable=True, comment="The source's own column name of the field"))
        batch_op.add_column(sa.Column('row_key', sa.String(length=128), nullable=True, comment="Natural key, or hash of the row's content: one record set per bad row"))
        batch_op.alter_column('raw', existing_type=sa.Text(), existing_nullable=True, comment='The whole source row as JSON (respondent ids hashed)', existing_comment='The whole source row as JSON')
        batch_op.create_index('ix_quarantine_source_row_key', ['source', 'row_key'], unique=False)
    # Employee ids were kept in clear in quarantined engagement rows: drop those rows' copies.
    op.execute("UPDATE quarantine SET raw = NULL, value = NULL WHERE source IN "
               "(SELECT DISTINCT source FROM engagement_response)")


def downgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index('ix_quarantine_source_row_key')
        batch_op.alter_column('raw', existing_type=sa.Text(), existing_nullable=True, comment='The whole source row as JSON', existing_comment='The whole source row as JSON (respondent ids hashed)')
        batch_op.drop_column('row_key')
        batch_op.drop_column('column')
    op.execute("UPDATE etl_run SET status = 'success' WHERE status = 'warning'")
    with op.batch_alter_table('etl_run', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_etl_run_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('running', 'success', 'failed')")
        batch_op.drop_column('rows_unchanged')
        batch_op.drop_column('rows_excluded')
        batch_op.alter_column('rows_skipped', existing_type=sa.Integer(), existing_nullable=False, comment=None, existing_comment='rows_excluded + rows_unchanged')
    with op.batch_alter_table('agg_engagement', schema=None) as batch_op:
        batch_op.alter_column('score_sumsq', existing_type=sa.Float(), type_=sa.Integer(), existing_nullable=False)
        batch_op.alter_column('score_sum', existing_type=sa.Float(), type_=sa.Integer(), existing_nullable=False, comment=None)
    with op.batch_alter_table('agg_survey_daily', schema=None) as batch_op:
        batch_op.alter_column('ces_sumsq', existing_type=sa.Float(), type_=sa.Integer(), existing_nullable=False)
        batch_op.alter_column('ces_sum', existing_type=sa.Float(), type_=sa.Integer(), existing_nullable=False, comment=None)
        batch_op.alter_column('csat_sum', existing_type=sa.Float(), type_=sa.Integer(), existing_nullable=False, comment=None)
    for table, col, ck, lo, hi in (('engagement_score', 'score', 'score_range', 1, 5),
                                   ('survey_rating', 'rating', 'rating_range', 1, 5)):
        op.execute(f"DELETE FROM {table} WHERE {col} < {lo} OR {col} > {hi}")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_{ck}'), type_='check')
            batch_op.create_check_constraint(ck, f'{col} BETWEEN {lo} AND {hi}')
            for name in reversed(SCALE):
                batch_op.drop_column(name)
    op.execute("UPDATE survey_response SET csat = NULL WHERE csat < 1 OR csat > 5")
    op.execute("UPDATE survey_response SET ces = NULL WHERE ces < 1 OR ces > 7")
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_survey_response_ces_range'), type_='check')
        batch_op.drop_constraint(op.f('ck_survey_response_csat_range'), type_='check')
        batch_op.create_check_constraint('csat_range', 'csat BETWEEN 1 AND 5')
        batch_op.create_check_constraint('ces_range', 'ces BETWEEN 1 AND 7')
        for name in ('ces_top', 'ces_max', 'ces_min', 'csat_top', 'csat_max', 'csat_min', 'visits'):
            batch_op.drop_column(name)
