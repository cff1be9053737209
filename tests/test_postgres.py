"""The index on a real PostgreSQL server, not just SQLite: a throwaway cluster for this module.

The cluster sorts text like a person would (ICU ``en-US``), as most servers do, so that a query
which only works in byte order shows up here. It listens on a Unix socket in its own temporary
folder and nowhere else. Skipped where PostgreSQL or psycopg is not installed.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import test_index
import test_scan
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, select, text
from test_cli import run

import migrations
from images import write_jpeg
from phototagger.cli import main
from phototagger.errors import IndexLockedError
from phototagger.index import Library
from phototagger.index import models as orm
from phototagger.model import LandmarkModel

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


@pytest.fixture(scope="module")
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


@pytest.fixture
def library(url) -> Iterator[Library]:
    library = Library(url)
    yield library
    library.engine.dispose()


@pytest.fixture(scope="module")
def model(tiny_model_path) -> LandmarkModel:
    return LandmarkModel.load(tiny_model_path, "cpu")


OPEN_INDEX = """
import sys
from phototagger.index import Library
print("ready", flush=True)
sys.stdin.readline()
Library(sys.argv[1])
"""

HOLD_LOCK = """
import sys
from phototagger.index import Library
with Library(sys.argv[1]).lock():
    print("ready", flush=True)
    sys.stdin.readline()
"""


def elsewhere(script: str, url: str, tmp_path: Path) -> subprocess.Popen:
    """Another phototagger process, as if on another machine: a cache folder of its own."""
    env = os.environ | {"XDG_CACHE_HOME": str(tmp_path / "elsewhere"),
                        "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-c", script, url], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def hold_lock_elsewhere(url: str, tmp_path: Path) -> subprocess.Popen:
    """Another process holding the scan lock until it reads a line."""
    holder = elsewhere(HOLD_LOCK, url, tmp_path)
    assert holder.stdout.readline().strip() == "ready", holder.stderr.read()
    return holder


def release_later(holder: subprocess.Popen, seconds: float) -> None:
    def release():
        time.sleep(seconds)
        holder.stdin.write("done\n")
        holder.stdin.flush()

    threading.Thread(target=release, daemon=True).start()


def test_first_use_applies_every_migration(cluster, url):
    library = Library(url)
    head = ScriptDirectory(os.path.dirname(migrations.__file__)).get_current_head()
    with library.engine.connect() as connection:
        assert connection.scalar(text("select version_num from alembic_version")) == head
        tables = set(inspect(connection).get_table_names())
        # Paths compare byte by byte, as in SQLite, whatever the database's own collation...
        collation = connection.scalar(text(
            "select collation_name from information_schema.columns"
            " where table_name = 'photos' and column_name = 'path'"))
        # ...which here puts 'paris' before 'PARIS', as most servers' collations do.
        by_language = connection.scalar(text("select 'paris' < 'PARIS'"))
    assert {"photos", "predictions", "models", "runs", "writes", "landmarks", "roots"} <= tables
    assert collation == "C"
    assert by_language == cluster.linguistic
    library.engine.dispose()


def test_first_uses_at_the_same_time_migrate_once(url, tmp_path):
    # Processes, as in life: Alembic keeps its state in module globals, not per thread.
    openers = [elsewhere(OPEN_INDEX, url, tmp_path=tmp_path) for _ in range(3)]
    try:
        assert [opener.stdout.readline().strip() for opener in openers] == ["ready"] * 3
        for opener in openers:  # all at once
            opener.stdin.write("go\n")
            opener.stdin.flush()
        errors = [opener.communicate(timeout=60)[1] for opener in openers]
    finally:
        for opener in openers:
            opener.kill()
            opener.wait()
    assert [opener.returncode for opener in openers] == [0, 0, 0], errors


def test_an_index_made_before_byte_order_paths_upgrades_keeping_its_photos(url):
    config = Config()
    config.set_main_option("script_location", os.path.dirname(migrations.__file__))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0002")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "insert into landmarks (slug, name, aliases) values ('eiffel', 'Eiffel', '[]')"))
        for path in ("/p/paris/a.jpg", "/p/PARIS/b.jpg", "/p/paris/c.jpg"):
            connection.execute(text(
                "insert into photos (path, status, landmark_slug, first_seen, last_seen)"
                " values (:path, 'ok', 'eiffel', now(), now())"), {"path": path})
    engine.dispose()
    library = Library(url)
    with library.session() as session:
        assert [p.path for p in library.find(session)] == [
            "/p/PARIS/b.jpg", "/p/paris/a.jpg", "/p/paris/c.jpg"]
        assert [p.path for p in library.find(session, under="/p/paris")] == [
            "/p/paris/a.jpg", "/p/paris/c.jpg"]
    library.engine.dispose()


def test_cli_scan_then_query_finds_the_photos(url, tiny_model_path, tmp_path):
    root = tmp_path / "Pictures"
    write_jpeg(root / "paris" / "b.jpg", seed=2)
    write_jpeg(root / "PARIS" / "c.jpg", seed=3)
    write_jpeg(root / "rome" / "a.jpg", seed=1)
    raw = os.fsencode(str(root)) + b"/caf\xe9.jpg"  # not UTF-8: kept as bytes (bytea)
    with open(raw, "wb") as handle:
        handle.write((root / "rome" / "a.jpg").read_bytes())
    code, out, err = run("scan", root, "--model", tiny_model_path, "--db", url, "--workers", 0)
    assert code == 0, err
    assert "found 4 photos: 4 new" in out and "tagged 4" in out

    result = CliRunner().invoke(main, ["query", "--db", url, "--format", "paths"])
    assert result.exit_code == 0, result.stderr
    # Exact bytes, in byte order as SQLite gives them: upper case first, whatever the server's
    # collation says.
    assert result.stdout_bytes.splitlines() == sorted(os.fsencode(p) for p in root.rglob("*.jpg"))
    assert raw in result.stdout_bytes.splitlines()
    code, out, _ = run("query", "--db", url, "--format", "paths", "--under", root / "paris")
    assert out.splitlines() == [str(root / "paris" / "b.jpg")]  # not PARIS/c.jpg

    library = Library(url)
    with library.session() as session:
        photo = library.photo_at(session, root / "paris" / "b.jpg")
        name = photo.landmark.name
        assert [w.mode for w in photo.writes] == ["embed"]
    library.engine.dispose()
    code, out, _ = run("query", "--db", url, "--landmark", name.upper()[:5], "--format", "paths")
    assert code == 0 and str(root / "paris" / "b.jpg") in out.splitlines()
    code, out, _ = run("scan", root, "--model", tiny_model_path, "--db", url, "--json")
    summary = json.loads(out)
    assert (code, summary["unchanged"], summary["predicted"]) == (0, 4, 0)
    # The server takes any password here; none is printed, as cron would mail it.
    with_password = url.replace(f"{USER}@", f"{USER}:s3cret@")
    code, out, err = run("db", "upgrade", "--db", with_password)
    assert code == 0, err
    assert "up to date" in out and "s3cret" not in out and ":***@" in out
    code, _, err = run("db", "upgrade", "--db", with_password.replace("/index_", "/missing_"))
    assert code == 2 and "cannot prepare index" in err and "s3cret" not in err


def test_a_dry_run_or_a_query_on_an_empty_database_creates_nothing(url, tiny_model_path, tmp_path):
    write_jpeg(tmp_path / "Pictures" / "a.jpg", seed=1)
    code, out, err = run("scan", tmp_path / "Pictures", "--model", tiny_model_path, "--db", url,
                         "--dry-run", "--workers", 0)
    assert code == 0 and out.startswith("dry run: found 1 photo"), err
    code, _, err = run("query", "--db", url)  # reading never creates an index either
    assert code == 2 and "`phototagger scan` makes one" in err
    engine = create_engine(url)
    with engine.connect() as connection:
        assert inspect(connection).get_table_names() == []
    engine.dispose()


def test_find_filters_like_on_sqlite(library):
    test_index.test_find_matches_names_partially_without_case_or_accents(library)


def test_non_utf8_names_keep_their_exact_bytes(library, tmp_path):
    test_index.test_non_utf8_names_keep_their_exact_bytes(library, tmp_path)


def test_rescan_predicts_nothing_new_and_follows_moves(library, model, tmp_path, monkeypatch):
    test_scan.test_rescan_opens_nothing_unchanged_and_follows_moves(
        library, model, tmp_path, monkeypatch)
    with library.session() as session:
        runs = session.scalars(select(orm.Run).order_by(orm.Run.id)).all()
    assert [r.summary["predicted"] for r in runs] == [4, 0, 0, 0]


def test_a_second_scan_in_this_process_is_refused_clearly(library, model, tmp_path):
    test_scan.test_a_second_scan_of_the_same_index_is_refused_clearly(library, model, tmp_path)
    test_index.test_second_scan_lock_gives_a_clear_error(library)


def test_the_lock_holds_across_processes_machines_and_url_spellings(
    url, model, tiny_model_path, tmp_path
):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    library = Library(url)
    holder = hold_lock_elsewhere(url + "&application_name=other-machine", tmp_path)
    try:
        with pytest.raises(IndexLockedError, match="another phototagger scan"):
            test_scan.scan(library, model, root)
        code, _, err = run("scan", root, "--model", tiny_model_path, "--db", url, "--wait", 0)
        assert code == 2 and "another phototagger scan is using this index" in err
        # Waiting: the scan goes on once the other one ends, and not before.
        started = time.monotonic()
        release_later(holder, 1.0)
        summary = test_scan.scan(library, model, root, wait=20)
        assert time.monotonic() - started >= 1.0
        assert summary.new == 1
        assert holder.wait(10) == 0
    finally:
        holder.kill()
        holder.wait()

    # A scan that is killed leaves no stale lock: the server drops it with the connection.
    holder = hold_lock_elsewhere(url, tmp_path)
    holder.kill()
    holder.wait()
    with library.lock(wait=10):
        pass
    library.engine.dispose()
