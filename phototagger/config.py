"""Where things live: the index, the shipped model. Read once, overridable by options and env."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

#: The model that ships inside the package; ``--model`` points elsewhere.
DEFAULT_MODEL = Path(__file__).parent / "models" / "default.pt"
DB_ENV = "PHOTOTAGGER_DB"


def default_db_url() -> str:
    """``PHOTOTAGGER_DB`` if set, else a SQLite file in the user's data directory."""
    configured = os.environ.get(DB_ENV)
    if configured:
        return db_url(configured)
    return db_url(str(Path(user_data_dir("phototagger")) / "index.sqlite3"))


def db_url(value: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as SQLite)."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"
