"""Pinned venvs for the real clients and references the tests run beside the ledger (each
needs packages of its own era): built once under var/<name>/<key>, keyed by the pins and
the Python version, and reused while those hold. A venv that cannot be built (no network)
skips its test with the reason."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pinned_venv(name: str, pins: tuple[str, ...]) -> Path:
    """A venv with `pins`, built once under var/<name>/<key> and reused while they hold."""
    key = hashlib.sha256(f"{sys.version_info[:2]} {' '.join(pins)}".encode()).hexdigest()[:12]
    venv = ROOT / "var" / name / key
    if (venv / ".complete").exists():
        return venv
    # Built in place (a venv cannot be moved); the marker is written only once it works.
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    for cmd in ([sys.executable, "-m", "venv", str(venv)], [*pip, "--no-input", *pins]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot build the {name} venv: {exc}")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"cannot build the {name} venv (no network/pip?): {tail}")
    (venv / ".complete").write_text("\n".join(pins))
    return venv
