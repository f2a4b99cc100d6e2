"""media and notes: the index of a run's images and tables, and a note per run

``run_media`` lists the artifacts under ``media/`` (runyard.media): an image's width, height and
caption, a table's format, rows and columns. Each row belongs to its artifact row (composite
foreign key, ON DELETE CASCADE). ``run_notes`` holds one Markdown note per run.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('run_media',
    sa.Column('run_id', _ID, nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=True),
    sa.Column('caption', sa.Text(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('n_rows', sa.BigInteger(), nullable=False),
    sa.Column('columns', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(precision=53), nullable=False),
    sa.ForeignKeyConstraint(['run_id', 'path'], ['artifacts.run_id', 'artifacts.path'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'path')
    )
    op.create_index('ix_run_media_kind_key', 'run_media', ['run_id', 'kind', 'key', 'step'], unique=False)
    op.create_table('run_notes',
    sa.Column('run_id', _ID, nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.Float(precision=53), nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id')
    )


def downgrade() -> None:
    op.drop_table('run_notes')
    op.drop_index('ix_run_media_kind_key', table_name='run_media')
    op.drop_table('run_media')
