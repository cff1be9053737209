"""The threshold each photo was decided with (photos.decided_threshold)

A scan's --threshold may differ from the model's own: `info` explains a decision with the
threshold it was made with. None: the model's (photos decided before this revision).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch_op:
        batch_op.add_column(sa.Column("decided_threshold", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch_op:
        batch_op.drop_column("decided_threshold")
