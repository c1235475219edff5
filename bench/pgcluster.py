"""A throwaway PostgreSQL cluster on loopback for tests: initdb, start, fresh databases, stop.

Uses the server binaries of the machine (Debian puts them in /usr/lib/postgresql/<v>/bin).
PostgreSQL refuses to run as root, so as root every server command runs as the `postgres`
OS user, in a temporary directory that user owns.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL bin directory that has initdb and pg_ctl."""
    env = os.environ.get("LEDGER_PG_BINDIR")
    candidates = [env] if env else []
    found = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(found, key=lambda p: int(Path(p).parent.name), reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One server process; `create_database()` hands out fresh, empty databases."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.tmp = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.data = self.tmp / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        if self.as_root:
            shutil.chown(self.tmp, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")

    def start(self) -> PgCluster:
        initdb = ["initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust"]
        # C locale: always available, and text sorts like SQLite's binary collation.
        self._run(*initdb, "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        # A test server: durability off keeps startup and every commit fast.
        opts = (
            f"-p {self.port} -h 127.0.0.1 -k {self.tmp} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = self.tmp / "server.log"
        ctl = ["pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data)]
        try:
            self._run(*ctl, "-l", str(log), "-o", opts)
        except RuntimeError as exc:
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{exc}\n{text}") from exc
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}{next(self._names)}"
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if self.data.exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
