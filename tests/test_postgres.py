"""The index on a real PostgreSQL server (postgres_cluster), where it differs from SQLite:
migrations, the command line, the lock across processes. The index's and the scan's own tests
that must hold on both run there too (``both_backends``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import test_scan
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

import migrations
from commands import run
from images import write_jpeg
from phototagger.cli import main
from phototagger.errors import IndexLockedError
from phototagger.index import Library
from postgres_cluster import USER

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
