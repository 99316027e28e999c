"""source files remember their modification time: a file of the same size and time as when
it was last loaded is not read or hashed again

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 22:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('source_file', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'mtime_ns', sa.BigInteger(), nullable=True,
            comment='Modification time when last seen; same size and time: not re-read'))


def downgrade() -> None:
    with op.batch_alter_table('source_file', schema=None) as batch_op:
        batch_op.drop_column('mtime_ns')
