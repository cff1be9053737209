"""Each photo's embedding, per network (embeddings)

embeddings.vector: the photo's embedding as float16 bytes (phototagger.search), keyed by
the photo and by the network that made it (phototagger.model.network_id). Photos scanned
before get theirs at the next scan that decodes them, or with ``scan --force``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embeddings",
        sa.Column("photo_id", sa.Integer(),
                  sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("network", sa.String(16), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("embeddings")
