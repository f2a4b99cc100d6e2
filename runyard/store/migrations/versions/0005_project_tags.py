"""project tags: key/value labels of a project (problem: classification), filterable in the project list

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('project_tags',
    sa.Column('project_id', _ID, nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'key')
    )
    op.create_index('ix_project_tags_key_value', 'project_tags', ['key', 'value'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_project_tags_key_value', table_name='project_tags')
    op.drop_table('project_tags')
