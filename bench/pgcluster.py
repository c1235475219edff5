"""A throwaway PostgreSQL cluster on loopback for the tests and the benchmark: initdb, start,
fresh databases, stop. Here, not in tests/, because the benchmark runs one too (tests/pg.py
re-exports it for the tests).

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


# The tests' server: durability off keeps startup and every commit fast.
TEST_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
)


class PgCluster:
    """One server process; `create_database()` hands out fresh, empty databases. `durable`
    starts it with PostgreSQL's own defaults (fsync and synchronous commit on, as an
    operator would run it: the benchmark), else with TEST_OPTIONS."""

    def __init__(self, bindir: Path, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
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
        return self._serve()

    def standby(self) -> PgCluster:
        """A hot standby of this server, streaming from it (`pg_basebackup -R`), started on
        a port of its own: a read replica, as an operator would add one."""
        replica = PgCluster(self.bindir, self.durable)
        replica._run(
            "pg_basebackup", "-D", str(replica.data), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", "-X", "stream", "-R", "--no-sync", "--checkpoint=fast",
        )  # fmt: skip
        return replica._serve()

    def _serve(self) -> PgCluster:
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.tmp}"
        if not self.durable:
            opts += " " + TEST_OPTIONS
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

    def dsn(self, database: str = "postgres") -> str:
        """The libpq connection string of `database` (psycopg, without SQLAlchemy)."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def show(self, *names: str) -> dict[str, str]:
        """The running server's values of the settings `names` (SHOW), to report them."""
        import psycopg

        out: dict[str, str] = {}
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            for n in names:  # names of the caller's code, never a user's
                row = conn.execute(f"SHOW {n}").fetchone()
                out[n] = "" if row is None else str(row[0])
        return out

    def pids(self) -> list[int]:
        """The postmaster's process id and its children's (the backends, checkpointer...)."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return []
        top = int(pid_file.read_text().split()[0])
        kids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == top:
                    kids.append(int(entry.name))
        return [top, *kids]

    def stop(self) -> None:
        try:
            if self.data.exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
