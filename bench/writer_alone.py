"""`python -m bench.writer_alone [--events N] [--runs K]`: bulk ingest without HTTP, for
work on the writer itself. Each run parses part_bulk's NDJSON bodies on this thread, submits
them to a Ledger on a fresh SQLite file (its writer thread appends them, at most three
bodies in flight), and prints events/s and this process's CPU per event beside raw sqlite3
`executemany` at synchronous FULL measured just before it.

It leaves out uvicorn and the event loop, which share the GIL with the writer in the
service: a change that wins here must still be measured with `python -m bench.run --only
bulk` (docs/performance.md has one that won here and not there)."""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from api.routes.batch import parse_body
from bench.baseline_sqlite import measure_raw_sqlite_executemany
from bench.part_bulk import bulk_bodies
from persistence.answers import Outcome
from persistence.ledger import Ledger
from persistence.runtime import paused_gc
from persistence.store import EventStore


def run_ledger(bodies: list[bytes], work: Path) -> tuple[float, float, int]:
    """(events/s, CPU µs per event, events appended) of one run on a fresh database under
    `work`: the rates count what the log holds afterwards, not the lines sent."""
    store = EventStore(f"sqlite:///{tempfile.mkdtemp(dir=work)}/ledger.db")
    store.create_schema()
    ledger = Ledger(store, time.time)
    ledger.start()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        ledger.submit(parse_body(bodies[0])).result()  # the starts the others keep alive
        pending: list[Future[list[Outcome]]] = []
        for body in bodies[1:]:
            with paused_gc():
                cmds = parse_body(body)
            pending.append(ledger.submit(cmds))
            if len(pending) > 2:
                pending.pop(0).result()
        for fut in pending:
            fut.result()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        head = store.head_digest()[0]
    finally:
        ledger.close()
        store.dispose()
    return head / wall, cpu / max(head, 1) * 1e6, head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--lines", type=int, default=1000, help="lines per body")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    bodies = bulk_bodies(args.events, args.lines)
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as d:
        for _ in range(args.runs):
            raw = measure_raw_sqlite_executemany(
                args.events, args.lines, synchronous="FULL", max_duration_s=120, db_dir=d
            )["rate"]
            eps, us, _ = run_ledger(bodies, Path(d))
            print(
                f"raw executemany FULL {raw:,.0f} rows/s  ledger {eps:,.0f} ev/s"
                f"  = {eps / raw:.3f}x  (CPU {us:.1f} µs/event)",
                flush=True,
            )


if __name__ == "__main__":
    main()
