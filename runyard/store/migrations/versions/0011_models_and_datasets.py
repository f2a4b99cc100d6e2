"""models and datasets: the model registry, versioned datasets, and the datasets each run read

``registered_models`` / ``model_versions`` (files as a content-addressed snapshot, a flavor, a
signature, requirements; ready or archived, never overwritten), ``model_aliases`` and their audit
trail ``model_alias_events``; ``datasets`` / ``dataset_versions`` (stored files as a snapshot, files
referenced in place as ``refs``, ``content_id`` to detect an unchanged push); ``run_datasets``: the
dataset versions a run read, for lineage.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_F = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table('registered_models',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('project_id', _ID, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', _F, nullable=False),
    sa.Column('updated_at', _F, nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'name', name='uq_registered_models_project_name')
    )
    op.create_table('model_versions',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('model_id', _ID, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('run_id', _ID, nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('snapshot_id', sa.String(length=64), nullable=False),
    sa.Column('flavor', sa.String(length=32), nullable=False),
    sa.Column('signature', sa.Text(), nullable=True),
    sa.Column('requirements', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', _F, nullable=False),
    sa.Column('archived_at', _F, nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'version', name='uq_model_versions_model_version')
    )
    op.create_index(op.f('ix_model_versions_run_id'), 'model_versions', ['run_id'], unique=False)
    op.create_table('model_aliases',
    sa.Column('model_id', _ID, nullable=False),
    sa.Column('alias', sa.String(length=128), nullable=False),
    sa.Column('version_id', _ID, nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.Column('updated_at', _F, nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'alias')
    )
    op.create_table('model_alias_events',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('model_id', _ID, nullable=False),
    sa.Column('alias', sa.String(length=128), nullable=False),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('at', _F, nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_model_alias_events_model', 'model_alias_events', ['model_id', 'id'], unique=False)
    op.create_table('datasets',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('project_id', _ID, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', _F, nullable=False),
    sa.Column('updated_at', _F, nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'name', name='uq_datasets_project_name')
    )
    op.create_table('dataset_versions',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('dataset_id', _ID, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_id', sa.String(length=64), nullable=False),
    sa.Column('snapshot_id', sa.String(length=64), nullable=True),
    sa.Column('refs', sa.Text(), nullable=False),
    sa.Column('n_files', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', _F, nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dataset_id', 'version', name='uq_dataset_versions_dataset_version')
    )
    op.create_index('ix_dataset_versions_content', 'dataset_versions', ['dataset_id', 'content_id'], unique=False)
    op.create_table('run_datasets',
    sa.Column('run_id', _ID, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version_id', _ID, nullable=False),
    sa.Column('recorded_at', _F, nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.id']),
    sa.PrimaryKeyConstraint('run_id', 'name')
    )
    op.create_index(op.f('ix_run_datasets_version_id'), 'run_datasets', ['version_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_run_datasets_version_id'), table_name='run_datasets')
    op.drop_table('run_datasets')
    op.drop_index('ix_dataset_versions_content', table_name='dataset_versions')
    op.drop_table('dataset_versions')
    op.drop_table('datasets')
    op.drop_index('ix_model_alias_events_model', table_name='model_alias_events')
    op.drop_table('model_alias_events')
    op.drop_table('model_aliases')
    op.drop_index(op.f('ix_model_versions_run_id'), table_name='model_versions')
    op.drop_table('model_versions')
    op.drop_table('registered_models')
