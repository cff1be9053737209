"""``phototagger serve`` as a real server process, as a person runs it: what it answers to big
uploads at once, what it logs, which names it answers to. (Its memory is measured by
benchmarks/upload_memory.py, never here.)"""

from __future__ import annotations

import io
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from images import png_claiming


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(tmp_path: Path, model: Path, *options: str):
    """``phototagger serve`` on a free loopback port; yields its URL and its stderr's file."""
    port, stderr = free_port(), tmp_path / "serve.stderr"
    command = [sys.executable, "-m", "phototagger.cli", "serve", "--port", str(port),
               "--model", str(model), "--db", str(tmp_path / "index.sqlite3"), *options]
    with open(stderr, "wb") as errors:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if server.poll() is not None:
                pytest.fail(f"serve stopped: {stderr.read_text()}")
            try:
                urllib.request.urlopen(f"{url}/about", timeout=10).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        yield url, stderr
    finally:
        server.terminate()
        server.wait(10)


def post(url: str, data: bytes, name: str, headers: dict | None = None) -> tuple[int, str]:
    """An upload as a browser sends it; the status and the body."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="{name}"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data + (
                f"\r\n--{boundary}--\r\n".encode())
    request = urllib.request.Request(f"{url}/api/predict", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def rgba_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (70, 110, 160, 200)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_big_uploads_at_once_are_each_answered(tmp_path, tiny_model_path):
    with serving(tmp_path, tiny_model_path) as (url, _):
        # The review's 855 kB PNG of 15000x15000 pixels, as far as the server reads it: its
        # header (refused from there, before a byte of its pixels is decoded).
        status, body = post(url, png_claiming(15000, 15000), "huge.png")
        assert status == 422
        assert "image too large: 15000x15000 is 225 MP, over the limit of 50 MP" in body
        data = rgba_png(2000)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(url, data, "big.png"), range(8)))
        assert all(status in (200, 503) for status, _ in answers), answers
        assert any(status == 200 for status, _ in answers)
        assert post(url, data, "again.png")[0] == 200  # and it is still there for the next


def test_an_unexpected_error_is_logged_with_its_traceback(tmp_path, tiny_model_path):
    log = tmp_path / "logs" / "serve.log"
    with serving(tmp_path, tiny_model_path, "--log", str(log)) as (url, stderr):
        assert urllib.request.urlopen(f"{url}/api/photos").status == 200
        with sqlite3.connect(tmp_path / "index.sqlite3") as index:  # the index broken under it
            index.execute("ALTER TABLE photos RENAME TO gone")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"{url}/api/photos")
        assert answer.value.code == 500
        assert answer.value.read() == b'{"error":"something went wrong; the server log has ' \
            b'details"}\n'
        for where in (stderr, log):
            text = where.read_text()
            assert " ERROR unexpected error on GET /api/photos\nTraceback (most recent call" \
                   " last):\n" in text, where
            assert "sqlite3.OperationalError: no such table: photos" in text, where


def test_the_server_answers_to_its_own_names_only(tmp_path, tiny_model_path):
    def status(url: str, host: str) -> int:
        request = urllib.request.Request(f"{url}/api/photos", headers={"Host": host})
        try:
            return urllib.request.urlopen(request).status
        except urllib.error.HTTPError as error:
            return error.code

    with serving(tmp_path, tiny_model_path, "--allow-host", "photos.example") as (url, _):
        for host in (url.split("//")[1], "localhost", socket.gethostname(), "photos.example"):
            assert status(url, host) == 200, host
        assert status(url, "evil.example") == 403
