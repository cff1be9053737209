"""How much memory does one upload to ``phototagger serve`` take, and eight at once?

Prints figures; never passes or fails. Run from the repository root:

    .venv/bin/python benchmarks/upload_memory.py
    .venv/bin/python benchmarks/upload_memory.py --phototagger /tmp/old-checkout --skip huge

It starts a real ``phototagger serve`` (the shipped model, an empty index) as its own process,
warms it up with one small upload (torch and the model loaded: the resting memory, which every
figure is measured from, in the same run), then for each case resets the server's peak
resident memory (``/proc/PID/clear_refs``, Linux) and reads it back once every request of the
case has its answer (``VmHWM``). The cases are the security review's:
- ``huge``: one 15000x15000 RGBA PNG (855 kB of file, 225 MP);
- ``large``: one 7000x7000 RGBA PNG (49 MP, just under the app's upload limit);
- ``eight``: eight of those at once;
- ``camera``: eight 24 MB JPEGs at once (as big as an upload may be).

``--phototagger DIR`` serves another copy of the code (say, ``git archive`` of an older
commit) with this Python, for a before-and-after in the same conditions; ``--skip`` leaves
cases out (an old server takes gigabytes on ``huge``, and eight times that on ``eight``).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def png(size: int) -> bytes:
    """A flat RGBA PNG of ``size`` x ``size``: tiny as a file, huge once decoded."""
    buffer = io.BytesIO()
    Image.new("RGBA", (size, size), (70, 110, 160, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def noisy_jpeg(megabytes: float) -> bytes:
    """A JPEG of noise, as large as ``megabytes``: the worst an upload limit lets through."""
    side = 2000
    while True:
        buffer = io.BytesIO()
        Image.effect_noise((side, side), 120).convert("RGB").save(buffer, "JPEG", quality=98)
        if buffer.tell() > megabytes * 1e6 * 0.9:
            return buffer.getvalue()
        side = int(side * (megabytes * 1e6 / buffer.tell()) ** 0.5 * 0.97) + 16


def upload(port: int, data: bytes, name: str) -> tuple[int, float, str]:
    """POST ``data`` to /api/predict; the status, the seconds it took, the error if any."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/predict",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            return response.status, time.monotonic() - started, ""
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started, error.read().decode()[:120]


def at_once(port: int, data: bytes, name: str, count: int) -> list[tuple[int, float, str]]:
    answers: list[tuple[int, float, str]] = [(0, 0.0, "")] * count

    def one(index: int) -> None:
        answers[index] = upload(port, data, name)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to the current VmRSS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(source: Path, folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(source)}
    server = subprocess.Popen(
        [sys.executable, "-c", "from phototagger.cli import main; main()", "serve",
         "--port", str(port), "--db", str(folder / "index.sqlite3")],
        env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=open(folder / "serve.log", "wb"),
    )
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/about", timeout=5).read()
            return server, port
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None:
                log = (folder / 'serve.log').read_text()
                raise SystemExit(f"the server stopped: {log}") from None
            time.sleep(0.2)
    raise SystemExit("the server did not answer within two minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phototagger", type=Path, default=REPO,
                        help="the checkout whose phototagger to serve [default: this one]")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["huge", "large", "eight", "camera"])
    args = parser.parse_args()
    large = png(7000)
    cases = {
        "huge": ("one 15000x15000 RGBA PNG", lambda: [png(15000)], 1, "huge.png"),
        "large": ("one 7000x7000 RGBA PNG", lambda: [large], 1, "large.png"),
        "eight": ("eight 7000x7000 RGBA PNGs at once", lambda: [large], 8, "large.png"),
        "camera": ("eight 24 MB JPEGs at once", lambda: [noisy_jpeg(24)], 8, "camera.jpg"),
    }
    with tempfile.TemporaryDirectory() as folder:
        server, port = start_server(args.phototagger.resolve(), Path(folder))
        try:
            small = io.BytesIO()
            Image.effect_noise((640, 480), 60).convert("RGB").save(small, "JPEG")
            upload(port, small.getvalue(), "warm.jpg")
            resting = status_kb(server.pid, "VmRSS")
            print(f"phototagger served from {args.phototagger.resolve()}, pid {server.pid}")
            print(f"resting memory, model loaded: {resting / 1e6:.2f} GB")
            print(f"{'case':40} {'peak GB':>8} {'+ GB':>6} {'after GB':>8}  answers")
            for key, (title, make, count, name) in cases.items():
                if key in args.skip:
                    continue
                [data] = make()
                reset_peak(server.pid)
                answers = at_once(port, data, name, count)
                peak = status_kb(server.pid, "VmHWM")
                after = status_kb(server.pid, "VmRSS")
                said = ", ".join(f"{status} in {seconds:.1f} s" for status, seconds, _ in answers)
                errors = {error for _, _, error in answers if error}
                print(f"{title + f' ({len(data) / 1e6:.1f} MB)':40} {peak / 1e6:8.2f} "
                      f"{(peak - resting) / 1e6:+6.2f} {after / 1e6:8.2f}  {said}"
                      + "".join(f"\n{'':42}{error}" for error in sorted(errors)))
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
