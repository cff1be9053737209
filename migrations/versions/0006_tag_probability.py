"""The probability a tag needs, beside the threshold (models.tag_probability)

The threshold is the least probability for a suggestion; a tag also needs the model file's
tag probability (phototagger.decision.Policy). None: the file has none (older files).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch_op:
        batch_op.add_column(sa.Column("tag_probability", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch_op:
        batch_op.drop_column("tag_probability")
