"""Leadership among `ledger project` workers on one views database: a lease row.

Several workers may run for availability (each `ledger serve` starts one, any host may run
more); exactly one of them, the leader, applies events, and the others (followers) only
watch the lease, so they do not burn the database re-reading batches they would lose.
Exactly once never rests on this: a batch is still claimed by the runner's conditional
UPDATE of the tracking rows (projections/runner.py), so two workers that both believe they
lead for a moment (a paused leader waking up) still apply each event once.

The lease is one row of `projection_leader` in the views database (SQLite and PostgreSQL
alike): its holder (`host:pid`), since when it leads, a heartbeat counter `beat` that the
leader moves every HEARTBEAT_S, and the wall time of the last beat (shown, never compared).
A follower takes over when it has seen the same (holder, beat) for LEASE_S by its own
monotonic clock, with a compare-and-swap on exactly that pair: no clock is compared across
hosts, and of several followers exactly one wins. A killed leader (`kill -9`) stops beating,
so another worker leads within LEASE_S plus a poll (at once when the dead leader was on the
follower's own host: a restarted `ledger serve` does not wait out its predecessor's lease);
a leader that finds the row taken from it (its renewal matches no row) steps down at once.
On PostgreSQL the new leader also ends the old one's database sessions (`fence`, found by
the `application_name` every ledger connection carries): a leader frozen inside a batch
would otherwise hold its row locks, and stall the views, until it woke.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from persistence.schema import application_name, process_name, serialise_ddl
from projections.present import iso

log = logging.getLogger(__name__)

# The leader beats this often; a follower that saw no beat for LEASE_S takes over.
HEARTBEAT_S = 1.0
LEASE_S = 4.0
# The one lease this module keeps (a column, so other leases could share the table).
VIEWS = "views"

metadata = MetaData()
leader_table = Table(
    "projection_leader",
    metadata,
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("since", Float, nullable=False),
    Column("beat", BigInteger, nullable=False),
    Column("renewed_at", Float, nullable=False),
)


def worker_id() -> str:
    """This process as a lease holder: `host:pid`."""
    return process_name()


def gone_from_this_host(holder: str) -> bool:
    """Whether `holder` names a process of this host that no longer runs. Should another
    host bear the same name, the worst is a lead taken from a live worker, which then
    follows at its next beat: never an event applied twice (the runner's claim)."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it runs, as another user
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A process that exited and that its parent has not reaped yet (Linux; elsewhere a
    dead worker's lease is waited out)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@dataclass(frozen=True)
class Lease:
    holder: str
    since: float
    beat: int
    renewed_at: float


def create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        serialise_ddl(conn)
        metadata.create_all(conn, checkfirst=True)


def current(engine: Engine) -> Lease | None:
    """The lease as stored (None when no worker ever led on this database)."""
    t = leader_table
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, leader_table.name):
            return None  # no `ledger project` ever ran here
        row = conn.execute(
            select(t.c.holder, t.c.since, t.c.beat, t.c.renewed_at).where(t.c.name == VIEWS)
        ).first()
    return None if row is None else Lease(row[0], row[1], int(row[2]), row[3])


def shown(engine: Engine, lag: int | None) -> dict[str, Any] | None:
    """The lease as /readyz shows it: the leading worker, since when, its last beat (wall
    times, ISO 8601) and how many events the views lag behind the log."""
    lease = current(engine)
    if lease is None:
        return None
    return {
        "worker": lease.holder,
        "since": iso(lease.since),
        "renewed_at": iso(lease.renewed_at),
        "lag": lag,
    }


def fence(engine: Engine, holder: str) -> int:
    """End the database sessions of the worker the lease was taken from (PostgreSQL): a
    leader that froze inside a batch (a hung host, a long pause) holds its transaction's row
    locks, which would stall its successor until it wakes. Its work rolls back; waking, it
    finds its lease gone and follows. The number of sessions ended."""
    if engine.dialect.name == "sqlite":
        return 0  # one host: a frozen writer's lock is waited out (busy_timeout)
    try:
        with engine.begin() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": application_name(holder)},
            ).scalar()
    except DBAPIError as exc:  # another role's sessions, without pg_signal_backend
        log.warning("could not end the sessions of %s: %s", holder, exc.orig)
        return 0
    if ended:
        log.warning("took the lease from %s; ended its %d database sessions", holder, ended)
    return int(ended or 0)


class Leadership:
    """One worker's side of the lease: `poll()` says whether it leads now, beating while it
    does and watching (taking over a silent lease) while it does not."""

    def __init__(
        self,
        engine: Engine,
        holder: str | None = None,
        lease_s: float = LEASE_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.engine = engine
        self.holder = holder or worker_id()
        self.lease_s, self.heartbeat_s = lease_s, heartbeat_s
        self.leading = False
        self._seen: tuple[str, int] | None = None
        self._seen_at = 0.0
        self._beat_at = 0.0

    def poll(self) -> bool:
        """Whether this worker leads now. Cheap between beats: it touches the database
        at most once per heartbeat."""
        now = time.monotonic()
        if now - self._beat_at < self.heartbeat_s:
            return self.leading
        self._beat_at = now
        self.leading = self._renew() if self.leading else self._try_take(now)
        return self.leading

    def _renew(self) -> bool:
        t = leader_table
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(t)
                .where(t.c.name == VIEWS, t.c.holder == self.holder)
                .values(beat=t.c.beat + 1, renewed_at=time.time())
            ).rowcount
        return moved == 1

    def _try_take(self, now: float) -> bool:
        lease = current(self.engine)
        if lease is None:
            return self._insert()
        if lease.holder == self.holder:
            return self._renew()  # our own row (a restart reusing the pid is no harm)
        seen = (lease.holder, lease.beat)
        if gone_from_this_host(lease.holder):
            return self._swap(seen)  # a crashed worker here: no need to wait out its lease
        if seen != self._seen:
            self._seen, self._seen_at = seen, now
            return False
        if now - self._seen_at < self.lease_s:
            return False
        return self._swap(seen)

    def _values(self) -> dict[str, Any]:
        wall = time.time()
        return {"holder": self.holder, "since": wall, "beat": 0, "renewed_at": wall}

    def _insert(self) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(leader_table).values(name=VIEWS, **self._values()))
        except IntegrityError:
            return False  # another worker inserted first: it leads
        return True

    def _swap(self, seen: tuple[str, int]) -> bool:
        """Take the lease from a silent holder, only if it still says `seen`."""
        t = leader_table
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(t)
                .where(t.c.name == VIEWS, t.c.holder == seen[0], t.c.beat == seen[1])
                .values(**self._values())
            ).rowcount
        self._seen = None
        if moved == 1:
            fence(self.engine, seen[0])
        return moved == 1

    def step_down(self) -> None:
        """Give the lease up on a clean stop, so a follower takes over at its next poll."""
        if not self.leading:
            return
        t = leader_table
        with self.engine.begin() as conn:
            # A beat far in the past is not needed: an absent row is taken by insert.
            conn.execute(t.delete().where(t.c.name == VIEWS, t.c.holder == self.holder))
        self.leading = False
