"""photos.path in byte order on PostgreSQL, as on SQLite: folder ranges and sorting by path

A PostgreSQL database usually sorts text by a language's rules (case and punctuation count
little), so ``path >= '/photos/paris/'`` took in ``/photos/PARIS/`` and missed other files.
SQLite always compares bytes; nothing changes there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column(
            "photos", "path", type_=sa.Text(collation="C"), existing_type=sa.Text(),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column(
            "photos", "path", type_=sa.Text(), existing_type=sa.Text(collation="C"),
            existing_nullable=False,
        )
