"""A throwaway PostgreSQL server for the tests, started once when a test first asks for it.

The cluster sorts text like a person would (ICU ``en-US``), as most servers do, so that a query
which only works in byte order shows up here. It listens on a Unix socket in its own temporary
folder and nowhere else. Tests that need it skip where PostgreSQL or psycopg is not installed.
Loaded by the root conftest as a plugin (its fixtures: ``cluster``, ``url``).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

#: For a test that must hold on either kind of index: its ``library`` is made in a SQLite
#: file, then in a PostgreSQL database.
both_backends = pytest.mark.parametrize("library", ["sqlite", "postgresql"], indirect=True)

USER = "phototagger"


@dataclass
class Cluster:
    """A running throwaway server: its socket folder and whether it sorts text by language."""

    socket_dir: str
    linguistic: bool

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@/{database}?host={self.socket_dir}"


def find_tool(name: str) -> str | None:
    """``name`` on PATH, else in Debian's versioned folders (newest first), where CI has it."""
    found = shutil.which(name)
    if found:
        return found
    versions = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    versions.sort(key=lambda path: int(re.sub(r"\D", "", Path(path).parts[-3]) or 0))
    return versions[-1] if versions else None


def as_server_user(folder: str) -> list[str]:
    """The command prefix that runs PostgreSQL's tools, which refuse to run as root."""
    if os.geteuid() != 0:
        return []
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to run PostgreSQL as")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                "--clear-groups", "--"]
    pytest.skip("running as root without runuser or setpriv to run PostgreSQL as 'nobody'")


def start_cluster(folder: str, initdb: str, pg_ctl: str, prefix: list[str]) -> Cluster:
    """initdb and start a server on a socket in ``folder``; skips the module if it can't."""
    data = os.path.join(folder, "data")

    def tool(*args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*prefix, *args], cwd=folder, capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"cannot start a PostgreSQL server: {error}")

    # Durability is no concern for a throwaway cluster: no fsync makes it start in a second.
    common = [initdb, "-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
    made = tool(*common, "--locale=C", "--locale-provider=icu", "--icu-locale=en-US")
    linguistic = made.returncode == 0
    if not linguistic:  # PostgreSQL before 15, or built without ICU
        shutil.rmtree(data, ignore_errors=True)
        made = tool(*common, "--locale=C")
    if made.returncode != 0:
        pytest.skip(f"cannot create a PostgreSQL cluster: {made.stderr.strip()[-500:]}")
    settings = (f"-c listen_addresses='' -c unix_socket_directories='{folder}' -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off")
    log = Path(folder, "log")
    started = tool(pg_ctl, "-D", data, "-l", str(log), "-w", "-t", "30", "-o", settings, "start")
    if started.returncode != 0:
        reason = log.read_text() if log.exists() else started.stderr
        pytest.skip(f"cannot start a PostgreSQL server: {reason.strip()[-500:]}")
    return Cluster(folder, linguistic)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
    initdb, pg_ctl = find_tool("initdb"), find_tool("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed")
    # Not pytest's tmp_path: that lies in a folder only its owner may enter. /tmp keeps the
    # socket's path short too (a Unix socket's path has about 100 bytes at most).
    short = "/tmp" if os.path.isdir("/tmp") else None
    folder = tempfile.mkdtemp(prefix="phototagger-pg-", dir=short)
    prefix: list[str] = []
    try:
        prefix = as_server_user(folder)
        yield start_cluster(folder, initdb, pg_ctl, prefix)
    finally:
        if Path(folder, "data", "postmaster.pid").exists():
            subprocess.run([*prefix, pg_ctl, "-D", os.path.join(folder, "data"), "-m", "immediate",
                            "stop"], cwd=folder, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def url(cluster) -> str:
    """A fresh, empty database of its own for each test."""
    name = f"index_{uuid.uuid4().hex[:12]}"
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return cluster.url(name)
