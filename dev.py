#!/usr/bin/env python3
"""Bootstrap and run Session Ledger with nothing but python3.

    python3 dev.py serve [ledger serve options]   # the service on the embedded SQLite default
    python3 dev.py test  [pytest options]         # lint, types and the whole test suite

Creates ./.venv on first use and installs the pinned project (with its dev extra) into it;
reinstalls only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject-sha256"


def run(*cmd: str | Path) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def ensure_env() -> None:
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want and (BIN / "ledger").exists():
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing the project and its pinned dependencies into .venv ...", flush=True)
    pip = [BIN / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if run(*pip, "-e", ".[dev]") != 0:
        sys.exit("pip install failed")
    STAMP.write_text(want)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("serve", "test"):
        print(__doc__)
        return 2
    ensure_env()
    if argv[0] == "serve":
        return run(BIN / "ledger", *argv)
    checks = [
        (BIN / "ruff", "check", "."),
        (BIN / "ruff", "format", "--check", "."),
        (BIN / "mypy",),
    ]
    for check in checks:
        print("$", " ".join(str(c.name) if isinstance(c, Path) else c for c in check), flush=True)
        if run(*check) != 0:
            return 1
    code = run(BIN / "python", "-m", "pytest", *argv[1:])
    # pytest exits 5 when it collected nothing: that is a failure of the suite, say so.
    if code == 5:
        print("pytest collected no tests: failing", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
