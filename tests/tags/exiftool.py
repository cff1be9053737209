"""An independent reader for the tags tests: exiftool's JSON output."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed")
VOLATILE = {"System:FileName", "System:Directory", "System:FileSize", "System:FileModifyDate",
            "System:FileAccessDate", "System:FileInodeChangeDate", "System:FilePermissions",
            "SourceFile", "ExifTool:ExifToolVersion"}


def exiftool_json(path: Path, *args: str) -> dict:
    """Every tag exiftool reads (-a -G1 -struct -n), keyed 'Group:Tag'."""
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-a", "-struct", "-n", "-charset", "filename=utf8", *args,
         str(path)],
        capture_output=True, check=True,
    ).stdout
    return json.loads(out)[0]


def stable(tags: dict) -> dict:
    """Tags minus file-system facts that change with any rewrite."""
    return {k: v for k, v in tags.items() if k not in VOLATILE}


def group(tags: dict, *prefixes: str) -> dict:
    return {k: v for k, v in tags.items() if k.split(":")[0].startswith(prefixes)}
