"""Headless Chromium for the tests that need a real browser: one command line, one skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def need_chromium() -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): render check skipped")
    return CHROMIUM


def chromium(profile: Path, *args: str, timeout: float = 60) -> str:
    """Run headless Chromium with a throwaway profile and no background traffic; its stdout."""
    command = [
        need_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return done.stdout
