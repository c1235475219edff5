"""`ledger project` worker processes in tests: starting one on a database, finding the
processes below a `ledger serve`, and reading (or waiting for) the worker that leads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from persistence.schema import make_engine
from projections import leadership
from tests.conftest import ROOT


def start_project_process(url: str, log: Path, host: str | None = None) -> subprocess.Popen[bytes]:
    """`ledger project` on the same database (what each `ledger serve` starts); with `host`,
    in a UTS namespace of its own under that host name (another machine, as far as the lease
    can tell: see `can_rename_host`). The worker keeps the process id `Popen` reports."""
    env = dict(os.environ, LEDGER_DATABASE_URL=url, LEDGER_VIEWS_URL=url)
    cmd = [sys.executable, "-m", "api.cli", "project", "--poll-interval", "0.001"]
    if host is not None:
        cmd = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *cmd]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def can_rename_host() -> bool:
    """Whether this machine lets a process take a host name of its own (`unshare --uts`
    needs CAP_SYS_ADMIN: root here and in CI, not in every container)."""
    try:
        done = subprocess.run(
            ["unshare", "--uts", "hostname", "probe-host"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: children's parent ids)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def leader_pid(url: str) -> int | None:
    """The pid of the worker holding the lease on the views database `url` (None: nobody
    ever led there)."""
    engine = make_engine(url)
    try:
        lease = leadership.current(engine)
    finally:
        engine.dispose()
    return None if lease is None else int(lease.holder.rsplit(":", 1)[1])


def wait_for_leader(url: str, other_than: int | None, within: float) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pid = leader_pid(url)
        if pid is not None and pid != other_than:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"no worker other than {other_than} leads after {within} s")
