"""monthly rollups per unit (no dimensions) and the values each dimension takes per month:
what unit-only views and the filter bar read instead of millions of daily rows

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 01:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

SURVEY = (('responses', sa.Integer(), None), ('nps_n', sa.Integer(), None),
          ('nps_promoters', sa.Integer(), None), ('nps_detractors', sa.Integer(), None),
          ('csat_n', sa.Integer(), None), ('csat_top2', sa.Integer(), None),
          ('csat_sum', sa.Float(), 'Rescaled onto 1-5'), ('ces_n', sa.Integer(), None),
          ('ces_sum', sa.Float(), 'Rescaled onto 1-7'), ('ces_sumsq', sa.Float(), None),
          ('ces_agree', sa.Integer(), None), ('spend_n', sa.Integer(), None),
          ('spend_sum', sa.Float(), None))
SALES = (('txns', sa.Integer(), None), ('revenue', sa.Float(), None),
         ('revenue_sumsq', sa.Float(), None), ('points_earned', sa.Integer(), None),
         ('points_redeemed', sa.Integer(), None))


def _monthly(name: str, keys: list[sa.Column], measures) -> None:
    op.create_table(
        name,
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('org_unit_id', sa.String(length=64), nullable=False),
        *keys,
        *[sa.Column(m, kind, nullable=False, comment=note) for m, kind, note in measures],
        sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'],
                                name=op.f(f'fk_{name}_org_unit_id_org_unit')),
        sa.PrimaryKeyConstraint('month', 'org_unit_id', *[k.name for k in keys],
                                name=op.f(f'pk_{name}')),
    )


def upgrade() -> None:
    _monthly('agg_survey_monthly', [], SURVEY)
    _monthly('agg_txn_monthly', [sa.Column('member', sa.Boolean(), nullable=False)], SALES)
    op.create_table(
        'agg_dim_value',
        sa.Column('fact', sa.String(length=8), nullable=False),
        sa.Column('dim', sa.String(length=16), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('value', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('fact', 'dim', 'month', 'value', name=op.f('pk_agg_dim_value')),
    )
    # A database loaded before this revision gets its monthly rows from its daily ones, as
    # the ETL will keep doing: no reload needed.
    for daily, monthly, keys, measures, fact, dims in (
            ('agg_survey_daily', 'agg_survey_monthly', ['month', 'org_unit_id'], SURVEY,
             'survey', ('segment', 'channel', 'device', 'interaction', 'touchpoint')),
            ('agg_txn_daily', 'agg_txn_monthly', ['month', 'org_unit_id', 'member'], SALES,
             'sales', ('segment', 'channel'))):
        names = [m for m, _, _ in measures]
        src = sa.table(daily, *[sa.column(c) for c in (*keys, *names, *dims)])
        dst = sa.table(monthly, *[sa.column(c) for c in (*keys, *names)])
        op.execute(sa.insert(dst).from_select(
            keys + names,
            sa.select(*[src.c[k] for k in keys], *[sa.func.sum(src.c[m]) for m in names])
            .group_by(*[src.c[k] for k in keys])))
        values = sa.table('agg_dim_value', sa.column('fact'), sa.column('dim'),
                          sa.column('month'), sa.column('value'))
        for dim in dims:
            op.execute(sa.insert(values).from_select(
                ['fact', 'dim', 'month', 'value'],
                sa.select(sa.literal(fact), sa.literal(dim), src.c.month, src.c[dim])
                .where(src.c[dim].is_not(None)).distinct()))


def downgrade() -> None:
    op.drop_table('agg_dim_value')
    op.drop_table('agg_txn_monthly')
    op.drop_table('agg_survey_monthly')
