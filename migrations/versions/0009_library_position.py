"""photos.estimated_*: a GPS-less photo's position estimated from the library's own GPS

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 15:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (("estimated_latitude", sa.Float()), ("estimated_longitude", sa.Float()),
           ("estimated_spread_km", sa.Float()), ("estimated_photos", sa.Integer()))


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch_op:
        for name, _ in COLUMNS:
            batch_op.drop_column(name)
