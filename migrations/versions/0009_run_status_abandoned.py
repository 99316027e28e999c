"""etl_run status 'abandoned': a run whose process died, marked when its claim is taken over

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 18:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None

OLD = "status IN ('running', 'success', 'warning', 'failed')"
NEW = "status IN ('running', 'success', 'warning', 'failed', 'abandoned')"


def upgrade() -> None:
    # SQLite cannot alter a CHECK constraint: batch mode rebuilds the table.
    with op.batch_alter_table('etl_run') as batch:
        batch.drop_constraint(op.f('ck_etl_run_status'), type_='check')
        batch.create_check_constraint(op.f('ck_etl_run_status'), sa.text(NEW))


def downgrade() -> None:
    run = sa.table('etl_run', sa.column('status', sa.String))
    op.execute(run.update().where(run.c.status == 'abandoned').values(status='failed'))
    with op.batch_alter_table('etl_run') as batch:
        batch.drop_constraint(op.f('ck_etl_run_status'), type_='check')
        batch.create_check_constraint(op.f('ck_etl_run_status'), sa.text(OLD))
