"""The Ray engine on a real local Ray cluster (2 CPUs): the same index as the local engine,
a worker killed mid-scan, a file that kills its decoder, and the missing extra."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ray_setup import CRASH_MARK
from sqlalchemy import func, select

from commands import run
from images import write_jpeg
from phototagger import tags
from phototagger.errors import ConfigError
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.scan.pipeline import Scanner, ScanOptions

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster for this module; every scan here joins it instead of starting one."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "ray_setup.install",
                          "env_vars": {"PYTHONPATH": str(TESTS)}})
    yield
    ray.shutdown()


def library_of(path: Path) -> Library:
    return Library(f"sqlite:///{path}")


def indexed(library: Library) -> dict:
    """Each photo's decision, tag and top-k (to two decimals), by file name."""
    with library.session() as session:
        photos = session.scalars(select(orm.Photo)).unique().all()
        return {
            Path(photo.fs_path).name: (
                photo.status, photo.error, photo.decision, photo.landmark_slug, photo.tag_state,
                [(p.rank, p.slug, round(p.probability, 2), round(p.similarity or 0, 2))
                 for p in sorted(photo.predictions, key=lambda p: p.rank)],
            )
            for photo in photos
        }


def photo_counts(library: Library) -> tuple[int, int, int]:
    with library.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(table))
                     for table in (orm.Photo, orm.Prediction, orm.Embedding))


def comparable(summary) -> dict:
    data = summary.to_dict()
    for key in ("seconds", "images_per_second"):
        del data[key]
    data["failed"] = [(Path(f["path"]).name, f["reason"]) for f in data["failed"]]
    return data


def test_both_engines_give_the_same_index_summary_and_tags(ray_cluster, model, tmp_path):
    root = tmp_path / "local"
    for seed in range(7):
        write_jpeg(root / f"{seed}.jpg", seed=seed)
    odd = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 name: not UTF-8, it travels as bytes
    write_jpeg(root / odd, seed=7)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    shutil.copytree(root, tmp_path / "ray")
    local, on_ray = library_of(tmp_path / "local.sqlite3"), library_of(tmp_path / "ray.sqlite3")
    options = dict(workers=0, batch_size=3, threshold=0.0)
    by_local = Scanner(local, model, ScanOptions(**options)).run([root])
    by_ray = Scanner(on_ray, model, ScanOptions(engine="ray", **options)).run([tmp_path / "ray"])
    assert comparable(by_ray) == comparable(by_local)
    assert (by_ray.predicted, by_ray.tagged, len(by_ray.failed)) == (8, 8, 1)
    assert indexed(on_ray) == indexed(local)
    assert photo_counts(on_ray) == photo_counts(local)
    for path in root.iterdir():
        if path.name != "broken.jpg":
            assert tags.read_tags(tmp_path / "ray" / path.name).slug == tags.read_tags(path).slug


def test_the_command_runs_on_ray_with_its_summary_and_exit_code(ray_cluster, tmp_path,
                                                                 tiny_model_path):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    (root / "b.jpg").write_bytes(b"not an image")
    db = tmp_path / "index.sqlite3"
    code, out, err = run("scan", root, "--model", tiny_model_path, "--db", db, "--engine", "ray",
                         "--json")
    assert code == 1, err  # a file failed: as the local engine says it
    summary = json.loads(out.split("\n}\n")[0] + "\n}")
    assert (summary["predicted"], [Path(f["path"]).name for f in summary["failed"]]) == (
        1, ["b.jpg"])
    code, out, err = run("scan", root, "--model", tiny_model_path, "--db", db, "--engine", "ray")
    assert code == 0, err  # the failed file is left alone until it changes, as locally
    assert "0 new, 0 changed, 0 moved, 0 for a new model, 1 unchanged, 1 skipped" in out


def _ray_workers(kind: str) -> list[int]:
    """Pids of this machine's Ray worker processes whose title names ``kind``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::") and kind.encode() in title:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds workers in /proc")
def test_a_ray_worker_killed_mid_scan_loses_nothing(ray_cluster, model, tmp_path):
    root = tmp_path / "photos"
    for seed in range(24):
        write_jpeg(root / f"{seed:02}.jpg", seed=seed, size=(1600, 1200))
    library = library_of(tmp_path / "index.sqlite3")
    killed: list[int] = []

    def kill_the_inference_actor() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for pid in _ray_workers("MapWorker"):
                time.sleep(0.5)  # into its work, not while it loads
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_inference_actor)
    killer.start()
    summary = Scanner(library, model, ScanOptions(engine="ray", batch_size=2, threshold=0.0,
                                                  write="none")).run([root])
    killer.join()
    assert killed, "no Ray worker was found to kill"
    assert (summary.predicted, summary.failed, summary.interrupted) == (24, [], False)
    assert photo_counts(library) == (24, 24 * 5, 24)  # every photo recorded once
    again = Scanner(library, model, ScanOptions(engine="ray", write="none")).run([root])
    assert (again.unchanged, again.predicted) == (24, 0)


def test_a_killed_ray_driver_leaves_a_whole_index_the_next_scan_finishes(
    ray_cluster, model, tiny_model_path, tmp_path
):
    """kill -9 of the scan itself, joined to a running cluster: nothing recorded twice, no
    file half-written, and the next scan does only what is left."""
    root = tmp_path / "photos"
    for seed in range(30):
        write_jpeg(root / f"{seed:02}.jpg", seed=seed, size=(1600, 1200))
    db = tmp_path / "index.sqlite3"
    address = ray.get_runtime_context().gcs_address
    driver = subprocess.Popen(
        [sys.executable, "-m", "phototagger.cli", "scan", str(root), "--model",
         str(tiny_model_path), "--db", str(db), "--engine", "ray", "--ray-address", address,
         "--batch-size", "2", "--threshold", "0", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    library = library_of(db)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if db.exists() and photo_counts(library)[0] >= 4:  # some batches are in
            break
        time.sleep(0.1)
    driver.kill()
    driver.wait()
    done = photo_counts(library)[0]
    assert 4 <= done < 30, "the scan was not caught mid-way"
    summary = Scanner(library, model, ScanOptions(engine="ray", threshold=0.0)).run([root])
    assert summary.failed == [] and summary.new == 30 - done
    assert photo_counts(library) == (30, 30 * 5, 30)
    assert all(tags.read_tags(path).slug for path in root.glob("*.jpg"))  # each whole, tagged
    assert not list(root.glob(".*.tmp"))


def test_a_file_that_kills_its_decoder_costs_only_itself(ray_cluster, model, tmp_path):
    root = tmp_path / "photos"
    for seed in range(5):
        write_jpeg(root / f"{seed}.jpg", seed=seed)
    culprit = write_jpeg(root / "culprit.jpg", seed=9)
    culprit.write_bytes(culprit.read_bytes() + CRASH_MARK)  # after the image's end: still a JPEG
    library = library_of(tmp_path / "index.sqlite3")
    summary = Scanner(library, model, ScanOptions(engine="ray", batch_size=3, threshold=0.0,
                                                  write="none")).run([root])
    assert [(Path(f["path"]).name, f["reason"]) for f in summary.failed] == [
        ("culprit.jpg", "the decoder crashed on this file")]
    assert summary.predicted == 5
    assert photo_counts(library) == (6, 5 * 5, 5)


def test_asking_for_ray_without_the_extra_is_a_one_line_error(monkeypatch, tmp_path,
                                                              tiny_model_path):
    write_jpeg(tmp_path / "photos" / "a.jpg")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import fails
    code, out, err = run("scan", tmp_path / "photos", "--model", tiny_model_path,
                         "--db", tmp_path / "index.sqlite3", "--engine", "ray")
    assert code == 2
    assert err.strip().splitlines() == [
        "phototagger: error: the Ray engine needs Ray Data: pip install 'phototagger[ray]'"]
    assert not (tmp_path / "index.sqlite3").exists()  # refused before anything was done


def test_more_actors_than_the_cluster_has_cpus_for_is_refused(ray_cluster, model, tmp_path):
    """Ray would wait for ever for a CPU to decode on."""
    write_jpeg(tmp_path / "photos" / "a.jpg")
    scanner = Scanner(library_of(tmp_path / "index.sqlite3"), model,
                      ScanOptions(engine="ray", ray_actors=2))
    with pytest.raises(ConfigError, match="--ray-actors 2 leaves none of the cluster's 2 CPUs"):
        scanner.run([tmp_path / "photos"])
