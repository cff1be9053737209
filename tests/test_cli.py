"""The command line as a cron job or a person meets it: output, formats and exit codes."""

import csv
import io
import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from commands import run
from images import gps_exif, write_jpeg, write_ojpeg_tiff
from phototagger.cli import main


@pytest.fixture
def env(tmp_path, tiny_model_path, monkeypatch):
    root = tmp_path / "Pictures"
    write_jpeg(root / "rome" / "a.jpg", seed=1)
    write_jpeg(root / "paris" / "b.jpg", seed=2)
    monkeypatch.setenv("PHOTOTAGGER_DB", str(tmp_path / "index.sqlite3"))
    return {"root": root, "model": str(tiny_model_path), "tmp": tmp_path}



def test_scan_then_query_in_every_format(env):
    code, out, err = run("scan", env["root"], "--model", env["model"], "--workers", 0)
    assert code == 0, err
    assert "found 2 photos: 2 new" in out and "tagged 2" in out
    code, out, _ = run("query", "--format", "paths")
    assert code == 0
    assert sorted(out.splitlines()) == sorted(str(p) for p in env["root"].rglob("*.jpg"))
    code, out, _ = run("query", "--format", "paths", "-0")
    assert sorted(out.split("\0")[:-1]) == sorted(str(p) for p in env["root"].rglob("*.jpg"))
    code, _, err = run("query", "--null")
    assert code == 2 and "--null goes with --format paths" in err
    code, out, _ = run("query", "--format", "json", "--under", env["root"] / "rome")
    [row] = json.loads(out)
    assert row["path"].endswith("rome/a.jpg") and 0 < row["confidence"] <= 1
    code, out, _ = run("query", "--format", "csv", "--limit", 1)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1 and rows[0]["landmark"]
    landmark = rows[0]["landmark"]
    code, out, _ = run("query", "--landmark", landmark.upper()[:5])
    assert landmark in out


def test_the_summary_counts_the_photos_it_predicted_and_says_so(env):
    """A rescan predicts only what changed: its counts are of those photos, not the library's
    (which `info` shows photo by photo), and the line says which they are."""
    from PIL import Image

    Image.new("RGB", (320, 240), (12, 12, 14)).save(env["root"] / "lens-cap.jpg")
    scan = ["scan", env["root"], "--model", env["model"], "--workers", 0, "--threshold", 0]
    code, out, _ = run(*scan)
    assert out.splitlines()[1].startswith("predicted 3: tagged 2, suggested 0, ")
    assert "featureless 1, " in out
    Image.new("RGB", (320, 240), (250, 250, 250)).save(env["root"] / "sky.jpg")
    assert run("tag", env["root"] / "rome" / "a.jpg", "--landmark", "colosseum")[0] == 0
    code, out, _ = run(*scan)
    assert out.splitlines()[1].startswith("predicted 1: tagged 0, suggested 0, ")
    assert "featureless 1, kept as a person set them 0, " in out
    assert "(featureless: not tagged by a scan)" in run("info", env["root"] / "lens-cap.jpg")[1]


def test_quiet_cron_run_prints_nothing_and_json_summary(env):
    log = env["tmp"] / "state" / "phototagger" / "scan.log"  # its folders don't exist yet
    code, out, err = run("scan", env["root"], "--model", env["model"], "--workers", 0, "--quiet",
                         "--log", log)
    assert (code, out, err) == (0, "", "")
    assert "summary" in log.read_text()
    code, out, _ = run("scan", env["root"], "--model", env["model"], "--json")
    summary = json.loads(out)
    assert (code, summary["unchanged"], summary["failed"]) == (0, 2, [])


def test_a_scan_says_which_links_it_did_not_follow(env):
    write_jpeg(env["tmp"] / "card" / "c.jpg", seed=3)
    os.symlink(env["tmp"] / "card", env["root"] / "phone")
    code, out, err = run("scan", env["root"], "--model", env["model"], "--workers", 0)
    assert (code, err) == (0, "")
    assert "found 2 photos" in out
    assert "1 link leads out of the scanned folders: not followed (--follow-links follows them)" \
        in out.splitlines()
    code, out, _ = run("scan", env["root"], "--model", env["model"], "--workers", 0, "--quiet")
    assert (code, out) == (0, "")  # nothing for cron to mail
    code, out, _ = run("scan", env["root"], "--model", env["model"], "--workers", 0,
                       "--follow-links")
    assert "found 3 photos: 1 new" in out and "link" not in out


def test_json_summary_still_names_failures_on_stderr(env):
    (env["root"] / "empty.jpg").write_bytes(b"")
    code, out, err = run("scan", env["root"], "--model", env["model"], "--workers", 0, "--json")
    assert code == 1
    assert [f["reason"] for f in json.loads(out)["failed"]] == ["empty file"]
    assert err == f"1 failed:\n  {env['root'] / 'empty.jpg'}: empty file\n"


def test_quiet_cron_run_over_broken_exif_prints_nothing(env):
    # A process of its own, as cron runs it: decoding workers write straight to its stderr.
    good = (env["root"] / "rome" / "a.jpg").read_bytes()
    broken_exif = good[:2] + b"\xff\xe1\x00\x10Exif\x00\x00MM\x00*\xff\xff\xff" + good[2:]
    (env["root"] / "broken-exif.jpg").write_bytes(broken_exif)
    done = subprocess.run(
        [sys.executable, "-m", "phototagger.cli", "scan", env["root"], "--model", env["model"],
         "--workers", "1", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_quiet_cron_run_keeps_a_c_decoders_message_in_the_files_reason(env):
    """libtiff prints from C, past Python's warnings: the worker catches it for the file."""
    tiff = write_ojpeg_tiff(env["root"] / "scanner" / "old.tif")
    done = subprocess.run(
        [sys.executable, "-m", "phototagger.cli", "scan", env["root"], "--model", env["model"],
         "--workers", "1", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    reason = "corrupt tiff file: decoder error -2 (OJPEGReadHeaderInfoSecTablesQTable: " \
        "Missing JPEG tables.)"
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"1 failed:\n  {tiff}: {reason}\n"
    assert f"index: failed ({reason})" in run("info", tiff)[1]


def test_failed_files_exit_1_and_are_named(env):
    (env["root"] / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nonsense")
    code, out, err = run("scan", env["root"], "--model", env["model"], "--workers", 0, "--quiet")
    assert code == 1
    assert out == ""
    assert "broken.jpg: truncated jpeg file" in err


def test_usage_and_configuration_errors_exit_2_in_one_line(env, tmp_path):
    code, _, err = run("scan", tmp_path / "nowhere", "--model", env["model"])
    assert code == 2
    not_a_model = tmp_path / "model.pt"
    not_a_model.write_bytes(b"garbage")
    code, _, err = run("scan", env["root"], "--model", not_a_model)
    assert code == 2
    assert err.strip() == f"phototagger: error: not a TorchScript model file: {not_a_model}"
    code, _, err = run("untag")
    assert code == 2
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    code, _, err = run("scan", env["root"], "--model", env["model"], "--log",
                       not_a_folder / "scan.log")
    assert code == 2 and err.startswith("phototagger: error: cannot write the log")
    assert len(err.strip().splitlines()) == 1


def test_tag_untag_info_landmarks_and_db_upgrade(env):
    run("scan", env["root"], "--model", env["model"], "--workers", 0)
    photo = env["root"] / "rome" / "a.jpg"
    code, out, err = run("tag", photo, "--landmark", "colosseo")
    assert code == 0, err
    assert "confirmed as Colosseum" in out
    code, out, _ = run("info", photo)
    assert "landmark: Colosseum [confirmed]" in out and "file tags: Colosseum by person" in out
    assert "image: jpeg 320x240" in out
    code, _, err = run("info", env["root"] / "nowhere.jpg")
    assert code == 2 and "no such file, and none in the index" in err
    code, _, err = run("info", env["root"] / "rome")
    assert code == 2 and "a folder, not a photo" in err
    code, out, _ = run("landmarks", "--model", env["model"])
    assert "Colosseum" in out and "Dome of the Rock" in out
    code, _, err = run("tag", photo, "--landmark", "atlantis")
    assert code == 2 and "unknown landmark 'atlantis'" in err
    code, out, _ = run("untag", photo)
    assert code == 0 and "tags removed" in out
    code, out, _ = run("query", "--landmark", "colosseum", "--format", "paths")
    assert str(photo) not in out
    code, out, _ = run("info", photo)
    assert "landmark: none [removed by a person: scans leave it untagged;" in out
    assert "#1: " in out and "#1: colosseum" not in out  # the guesses by name, not slug
    code, out, _ = run("db", "upgrade")
    assert code == 0 and "up to date" in out


def test_untag_says_what_it_did_to_a_photo_that_was_never_tagged(env):
    assert run("scan", env["root"], "--model", env["model"], "--workers", 0,
               "--threshold", 1)[0] == 0  # nothing clears it: nothing tagged
    photo = env["root"] / "rome" / "a.jpg"
    code, out, _ = run("untag", photo)
    assert (code, out) == (0, f"{photo}: nothing of phototagger's to remove; recorded as "
                              "removed by a person: scans leave it untagged\n")
    assert "[removed by a person" in run("info", photo)[1]
    loose = write_jpeg(env["root"] / "new.jpg", seed=5)
    code, out, _ = run("untag", loose)
    assert (code, out) == (0, f"{loose}: nothing of phototagger's to remove (not in the index:"
                              " a scan may still tag it)\n")


def test_untag_retag_lets_tags_move_from_the_files_into_sidecars(env):
    """The way from embedded tags to sidecars (or back): untag --all --retag, then a scan
    with the new --write; without --retag the photos would stay untagged for good."""
    from phototagger import tags

    scan = ["scan", env["root"], "--model", env["model"], "--workers", 0, "--threshold", 0]
    assert run(*scan)[0] == 0
    photos = sorted(env["root"].rglob("*.jpg"))  # paris/b.jpg, rome/a.jpg
    assert run("tag", photos[0], "--landmark", "dome of the rock")[0] == 0  # a person's
    assert all(tags.read_tags(p).where == p for p in photos)  # embedded
    code, out, err = run("untag", "--all", "--retag")
    assert code == 0, err
    assert "a person's landmark: the next scan writes it again" in out
    assert all(tags.read_tags(p) is None for p in photos)
    code, out, err = run(*scan, "--write", "sidecar", "--json")
    assert code == 0, err
    assert json.loads(out)["tagged"] == 2
    found = [tags.read_tags(p) for p in photos]
    assert [f.where for f in found] == [p.with_name(p.name + ".xmp") for p in photos]
    assert (found[0].slug, found[0].source) == ("dome-of-the-rock", "person")
    assert found[1].source == "model"
    assert json.loads(run(*scan, "--write", "sidecar", "--json")[1])["unchanged"] == 2



def test_a_persons_removal_holds_against_untag_all_retag_and_a_new_write_mode(env):
    """The recipe for moving tags (untag --all --retag, then a sidecar scan) must not put back
    what a person took away: only the person, naming the file, can lift a removal."""
    from phototagger import tags

    scan = ["scan", env["root"], "--model", env["model"], "--workers", 0, "--threshold", 0]
    assert run(*scan)[0] == 0
    wrong, right = sorted(env["root"].rglob("*.jpg"))
    assert run("untag", wrong)[0] == 0  # a person's decision: not that landmark
    code, out, err = run("untag", "--all", "--retag")
    assert code == 0, err
    assert str(wrong) not in out  # left as the person decided
    summary = json.loads(run(*scan, "--write", "sidecar", "--json")[1])
    assert summary["tagged"] == 1 and summary["unchanged"] == 1  # not even decoded
    assert tags.read_tags(wrong) is None and tags.read_tags(right) is not None
    assert run("untag", "--retag", wrong)[0] == 0  # the person changes their mind, by name
    assert json.loads(run(*scan, "--write", "sidecar", "--json")[1])["tagged"] == 1
    assert tags.read_tags(wrong).source == "model"


def test_query_and_tag_take_wildcards_literally(env):
    run("scan", env["root"], "--model", env["model"], "--workers", 0)
    for option in ("--landmark", "--country", "--city"):
        for text in ("%", "_"):
            code, out, err = run("query", option, text)
            assert (code, out, err) == (0, "", "no photos found\n"), (option, text)
    code, _, err = run("tag", env["root"] / "rome" / "a.jpg", "--landmark", "%")
    assert code == 2 and "unknown landmark '%'" in err


def test_tag_refuses_what_is_not_an_image_and_tags_the_rest(env):
    empty, text = env["root"] / "empty.jpg", env["root"] / "notes.jpg"
    empty.write_bytes(b"")
    text.write_text("not a photo\n")
    photo = env["root"] / "rome" / "a.jpg"
    code, out, err = run("tag", empty, text, photo, "--landmark", "colosseum",
                         "--model", env["model"])
    assert code == 1
    assert err.splitlines() == [f"{empty}: not tagged: empty file",
                                f"{text}: not tagged: not an image (unrecognised content)"]
    assert out == f"{photo}: confirmed as Colosseum (written to {photo})\n"
    assert sorted(p.name for p in env["root"].iterdir() if p.is_file()) == [
        "empty.jpg", "notes.jpg"]  # no sidecar
    code, out, _ = run("query", "--landmark", "colosseum", "--format", "paths")
    assert out.splitlines() == [str(photo)]


def test_info_shows_the_index_of_a_file_that_cannot_be_read(env):
    loop = env["root"] / "loop.jpg"
    loop.symlink_to(loop.name)  # exists, and cannot be opened even by root
    run("scan", env["root"], "--model", env["model"], "--workers", 0)
    code, out, err = run("info", loop)
    assert code == 0, err
    assert out.splitlines() == [
        "index: failed (cannot stat: Too many levels of symbolic links)",
        "file: could not be read (Too many levels of symbolic links)"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: a refused permission can "
                    "only be seen by another user")
def test_info_shows_the_index_of_a_file_the_user_may_not_read(env):
    broken = env["root"] / "broken.jpg"
    broken.write_text("not a photo\n")
    run("scan", env["root"], "--model", env["model"], "--workers", 0)
    broken.chmod(0)
    try:
        code, out, err = run("info", broken)
    finally:
        broken.chmod(0o644)
    assert code == 0, err
    assert out.splitlines() == ["index: failed (not an image (unrecognised content))",
                                "file: could not be read (Permission denied)"]


def test_predict_prints_guesses_and_one_line_errors(env, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    good = env["root"] / "rome" / "a.jpg"
    code, out, err = run("predict", good, bad, "--model", env["model"], "--top-k", 3)
    assert code == 1
    assert out.count("%") == 3
    assert err.strip() == f"{bad}: error: not an image (unrecognised content)"
    code, out, _ = run("predict", good, "--model", env["model"], "--json")
    [result] = json.loads(out)
    assert len(result["landmarks"]) == 5 and result["confident"] is True


def test_tag_before_any_scan_and_dry_run_leaves_no_index(env, tmp_path):
    photo = env["root"] / "paris" / "b.jpg"
    code, out, err = run("tag", photo, "--landmark", "tour eiffel", "--model", env["model"])
    assert code == 0, err
    assert "confirmed as Eiffel Tower" in out
    fresh = tmp_path / "fresh.sqlite3"
    code, out, _ = run("scan", env["root"], "--model", env["model"], "--dry-run", "--db", fresh,
                       "--workers", 0)
    assert code == 0 and out.startswith("dry run: found 2 photos")
    assert "\npredicted 2: would tag 1, " in out  # the other photo a person tagged
    assert not fresh.exists() and not fresh.with_name(fresh.name + ".lock").exists()


def test_a_dry_run_neither_creates_nor_upgrades_an_index(env, tmp_path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, inspect, text

    import migrations

    def scan_dry(db):
        return run("scan", env["root"], "--model", env["model"], "--dry-run", "--db", db,
                   "--workers", 0)

    empty = tmp_path / "empty.sqlite3"
    empty.touch()  # made by someone, never used: the dry run sees a library with nothing in it
    code, out, err = scan_dry(empty)
    assert code == 0 and "2 new" in out, err
    assert not inspect(create_engine(f"sqlite:///{empty}")).get_table_names()

    old = tmp_path / "old.sqlite3"
    config = Config()
    config.set_main_option("script_location", os.path.dirname(migrations.__file__))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{old}")
    command.upgrade(config, "0002")
    code, _, err = scan_dry(old)
    assert code == 2 and "phototagger db upgrade" in err
    with create_engine(f"sqlite:///{old}").connect() as connection:
        assert connection.scalar(text("select version_num from alembic_version")) == "0002"
    # Then the upgrade the message asks for, which says what it did.
    assert run("db", "upgrade", "--db", old)[:2] == (0, f"index upgraded: sqlite:///{old}\n")
    assert run("db", "upgrade", "--db", old)[1] == f"index up to date, unchanged: sqlite:///{old}\n"
    new = tmp_path / "new.sqlite3"
    assert run("db", "upgrade", "--db", new)[1] == f"index created: sqlite:///{new}\n"


def test_reading_commands_never_create_an_index(env, tmp_path):
    typo = tmp_path / "no-such-folder" / "index.sqlite3"
    for args in (["query", "--db", typo], ["landmarks", "--model", env["model"], "--db", typo],
                 ["info", env["root"] / "rome" / "a.jpg", "--db", typo], ["query"]):
        code, _, err = run(*args)
        assert code == 2 and "yet: `phototagger scan` makes one" in err, args
    assert not typo.parent.exists() and not (env["tmp"] / "index.sqlite3").exists()


def test_tag_waits_for_a_running_scan_then_says_so(env):
    from phototagger.cli import open_library

    with open_library(None).lock():
        code, _, err = run("tag", env["root"] / "rome" / "a.jpg", "--landmark", "colosseum",
                           "--model", env["model"], "--wait", 0)
    assert code == 2 and "another phototagger scan is using this index" in err


def test_a_night_without_a_scan_says_why_in_the_log_too(env):
    from phototagger.cli import open_library

    log = env["tmp"] / "scan.log"
    with open_library(None).lock():
        code, out, err = run("scan", env["root"], "--model", env["model"], "--quiet",
                             "--log", log)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "another phototagger scan is using this index" in err
    [line] = log.read_text().splitlines()
    assert " ERROR scan stopped: " in line and "another phototagger scan" in line


def test_paths_format_gives_exact_bytes_of_non_utf8_names(env):
    raw = os.fsencode(str(env["root"])) + b"/caf\xe9.jpg"
    with open(raw, "wb") as handle:
        handle.write((env["root"] / "rome" / "a.jpg").read_bytes())
    run("scan", env["root"], "--model", env["model"], "--workers", 0)
    result = CliRunner().invoke(main, ["query", "--format", "paths"])
    assert raw in result.stdout_bytes.splitlines()


def test_a_camera_too_far_from_the_landmark_is_told_by_scan_info_and_predict(env):
    photo = write_jpeg(env["root"] / "abroad.jpg", seed=5, exif=gps_exif(-27.1, -101.9))
    code, out, err = run("scan", env["root"], "--model", env["model"], "--workers", 0)
    assert code == 0, err
    assert "too far from the camera's GPS 1" in out
    code, out, err = run("info", photo)
    lines = out.splitlines()
    assert "camera GPS: -27.100000, -101.900000" in lines
    first = next(line for line in lines if "#1: " in line)
    assert first.endswith(" km from the camera (too far)")  # Easter Island is far from all six
    assert "file tags: none of phototagger's" in lines
    assert any(line.startswith("why: ") and "but the camera's GPS puts it" in line
               and line.endswith("km): not tagged") for line in lines)
    code, out, _ = run("predict", photo, "--model", env["model"])
    assert "but the camera's GPS puts it " in out and "km away (more than 300 km)" in out


def test_ctrl_c_or_sigterm_asks_the_scan_to_stop_and_a_second_one_stops_at_once(monkeypatch):
    from phototagger import cli

    class Scanner:
        stops = 0

        def request_stop(self):
            self.stops += 1

    scanner, before = Scanner(), signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        with cli._stopping_on_signals(scanner) as received:
            os.kill(os.getpid(), signal.SIGTERM)  # handled in this thread, as it returns
            os.kill(os.getpid(), signal.SIGTERM)  # `timeout` signals the process, then its group
            assert (received, scanner.stops) == ([signal.SIGTERM], 1)
            monkeypatch.setattr(cli, "REPEAT_WITHIN_S", 0.0)  # as if a second later
            os.kill(os.getpid(), signal.SIGINT)  # a person who does not want to wait
    assert stopped.value.code == 128 + signal.SIGINT and scanner.stops == 1
    assert signal.getsignal(signal.SIGTERM) == before  # put back as it was
    with cli._stopping_on_signals(scanner) as received:
        os.kill(os.getpid(), signal.SIGHUP)  # the ssh session that ran it closed
    assert (received, scanner.stops) == ([signal.SIGHUP], 2)


def test_scan_warnings_reach_stderr_and_failed_files_are_left_to_the_summary(capsys):
    import logging

    from phototagger.cli import _logging
    from phototagger.scan.summary import failures_log

    with _logging(None):
        logging.getLogger("phototagger.scan").warning("decoding workers cannot share")
        failures_log.warning("/photos/a.jpg: not an image")
    assert capsys.readouterr().err == "warning: decoding workers cannot share\n"


def test_an_index_url_whose_driver_is_missing_is_a_one_line_usage_error(env):
    code, out, err = run("query", "--db", "mysql://someone@localhost/photos")
    assert code == 2
    assert err == ("phototagger: error: cannot open index mysql://someone@localhost/photos: "
                   "its driver is not installed: MySQLdb\n")


def test_serve_on_a_port_in_use_is_a_one_line_usage_error(env, monkeypatch):
    import socket

    import werkzeug.serving

    def never(*args, **kwargs):
        raise AssertionError("the server must not start")

    monkeypatch.setattr(werkzeug.serving, "run_simple", never)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, out, err = run("serve", "--port", port, "--model", env["model"])
    assert code == 2
    assert err == f"phototagger: error: cannot serve on 127.0.0.1:{port}: Address already in use\n"


def test_an_index_from_a_newer_phototagger_is_a_one_line_usage_error(env, tmp_path):
    import sqlite3

    newer = tmp_path / "newer.sqlite3"
    assert run("db", "upgrade", "--db", newer)[0] == 0
    with sqlite3.connect(newer) as connection:
        connection.execute("update alembic_version set version_num = '9999'")
    for args in (["db", "upgrade"], ["query"]):
        code, out, err = run(*args, "--db", newer)
        assert code == 2 and len(err.splitlines()) == 1, (args, err)
        assert err.startswith(f"phototagger: error: cannot prepare index sqlite:///{newer}: ")
        assert err.endswith("(made by a newer phototagger? upgrade phototagger to use it)\n")


def test_landmarks_before_the_first_scan(env):
    """A fresh machine has no index yet: the model's landmarks are listed, none with photos;
    an index named on the command line that does not exist is still a mistake."""
    code, out, err = run("landmarks", "--model", env["model"])
    assert code == 0, err
    assert out.splitlines() and all(line.split()[0] == "0" for line in out.splitlines())
    code, _, err = run("landmarks", "--model", env["model"], "--db", env["tmp"] / "typo.db")
    assert code == 2 and "no index at" in err


def test_info_explains_with_the_threshold_the_scan_used(env):
    """A scan's --threshold decided the photo: info's why quotes it, not the model's own."""
    assert run("scan", env["root"], "--model", env["model"], "--workers", 0,
               "--threshold", 0.9)[0] == 0
    _, out, _ = run("info", env["root"] / "rome" / "a.jpg")
    [why] = [line for line in out.splitlines() if line.startswith("why: ")]
    assert why.endswith("below the threshold 0.90: not tagged"), why
