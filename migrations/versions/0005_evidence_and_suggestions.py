"""Open-set evidence per prediction; a photo's suggestion and the reason of its decision

models.tag_margin / models.suggest_margin: the evidence margins of the model file.
predictions.similarity / predictions.ordinary: how alike the photo is to the landmark's
reference photos and to ordinary photos (None: a model file without reference photos).
photos.suggested_slug: a plausible landmark not verified enough to be written into the file,
for a person to confirm. photos.decision: why the last scan decided as it did.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch_op:
        batch_op.add_column(sa.Column("tag_margin", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("suggest_margin", sa.Float(), nullable=True))
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.add_column(sa.Column("similarity", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ordinary", sa.Float(), nullable=True))
    with op.batch_alter_table("photos") as batch_op:
        batch_op.add_column(sa.Column("suggested_slug", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("decision", sa.String(20), nullable=True))
        batch_op.create_foreign_key(
            "fk_photos_suggested_slug", "landmarks", ["suggested_slug"], ["slug"]
        )
        batch_op.create_index("ix_photos_suggested_slug", ["suggested_slug"])


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch_op:
        batch_op.drop_index("ix_photos_suggested_slug")
        batch_op.drop_constraint("fk_photos_suggested_slug", type_="foreignkey")
        batch_op.drop_column("decision")
        batch_op.drop_column("suggested_slug")
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.drop_column("ordinary")
        batch_op.drop_column("similarity")
    with op.batch_alter_table("models") as batch_op:
        batch_op.drop_column("suggest_margin")
        batch_op.drop_column("tag_margin")
