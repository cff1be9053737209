"""Where things live (the index, the shipped model, the config file) and the user's defaults.

The config file is TOML in the platform's config folder (``PHOTOTAGGER_CONFIG`` names
another); each key is a command-line option of that name, which wins over it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from platformdirs import user_config_dir, user_data_dir
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from phototagger.errors import ConfigError

#: The model that ships inside the package; ``--model`` points elsewhere.
DEFAULT_MODEL = Path(__file__).parent / "models" / "default.pt"
DB_ENV = "PHOTOTAGGER_DB"
CONFIG_ENV = "PHOTOTAGGER_CONFIG"
#: What a config file may set: the options of these names, on every command that has one.
SETTINGS = ("db", "threshold", "write", "exclude", "workers", "device", "position", "engine",
            "ray-address", "ray-actors")


def default_db_url() -> str:
    """``PHOTOTAGGER_DB`` if set, else a SQLite file in the user's data directory."""
    configured = os.environ.get(DB_ENV)
    if configured:
        return db_url(configured)
    return db_url(str(Path(user_data_dir("phototagger")) / "index.sqlite3"))


def db_url(value: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as SQLite; ``~`` is the home)."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def shown_url(url: str) -> str:
    """``url`` as it may be printed: a server's password must not end up in cron mail or logs."""
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError):
        return url
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def config_path() -> Path:
    """``PHOTOTAGGER_CONFIG`` if set, else ``config.toml`` in the user's config directory."""
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(user_config_dir("phototagger")) / "config.toml"


def read_settings(path: Path) -> dict[str, object]:
    """The settings in the config file at ``path``: none where the default file does not exist.

    A file that ``PHOTOTAGGER_CONFIG`` names must exist, and a key that is not a setting is
    an error, not ignored: a misspelt ``treshold`` would otherwise leave every scan at the
    model's threshold without a word. The values are checked by the options they set.
    """
    try:
        with path.open("rb") as handle:
            settings = tomllib.load(handle)
    except FileNotFoundError:
        if os.environ.get(CONFIG_ENV):
            raise ConfigError(f"no config file at {path} (named by ${CONFIG_ENV})") from None
        return {}
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a TOML file: {error}") from None
    for key in settings:
        if key not in SETTINGS:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(SETTINGS)})")
    return settings
