"""Landmarks an index learned, and the photos it learned them from (gallery)

landmarks.learned: added by ``phototagger learn`` (or a person's tag of a new name), not by
a model file. gallery: each learning photo's embedding, per network (phototagger.vocabulary).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("landmarks") as batch_op:
        batch_op.add_column(
            sa.Column("learned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "gallery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(200),
                  sa.ForeignKey("landmarks.slug", ondelete="CASCADE"), nullable=False),
        sa.Column("network", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("added", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_gallery_slug", "gallery", ["slug"])


def downgrade() -> None:
    op.drop_index("ix_gallery_slug", "gallery")
    op.drop_table("gallery")
    with op.batch_alter_table("landmarks") as batch_op:
        batch_op.drop_column("learned")
