"""`python -m bench.hostile`: the hostile-load run. A real `ledger serve` on loopback takes
2,000 concurrent keepalives (64 at a time) while other clients send poison batch lines,
forged updates, over-cap bodies and requests without keys. It prints, per kind, how the
requests were answered, whether any valid command got a 5xx, the server's peak RSS beside
its RSS at rest, and that the log holds exactly the acknowledged keepalives.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

KEEPALIVES = 2000
CONCURRENCY = 64
SESSIONS = 50
POISON = [
    {"command": "update", "session_id": "s-0", "changes": [1]},
    {"command": "update", "session_id": "s-0", "changes": {"logs": [{"sha256": "/etc/passwd"}]}},
    {"command": "start", "session_id": "x" * 5000},
    {"command": "start", "session_id": "p", "started_at": "1e18"},
    {"command": "keepalive", "session_id": "s-1", "visible": "yes"},
    {"command": "start", "session_id": "q", "tags": 5},
]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = dict(os.environ, LEDGER_DATABASE_URL=f"sqlite:///{tmp}/l.db", LEDGER_BLOB_DIR=f"{tmp}/b")
    key = subprocess.run(
        [sys.executable, "-m", "api.cli", "keys", "create", "bench", "--scope", "admin"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = "18931"
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", port, "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url, key
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


async def run(url: str, key: str, pid: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    seen: dict[str, Counter[int]] = {}
    peak = [rss_kb(pid)]
    limits = httpx.Limits(max_connections=CONCURRENCY + 8)
    async with httpx.AsyncClient(base_url=url, headers=auth, limits=limits, timeout=30) as cl:
        for i in range(SESSIONS):
            await cl.post("/v1/sessions", json={"id": f"s-{i}"})
        sem = asyncio.Semaphore(CONCURRENCY)

        async def send(kind: str, method: str, path: str, **kw: Any) -> None:
            async with sem:
                r = await cl.request(method, path, **kw)
            seen.setdefault(kind, Counter())[r.status_code] += 1

        async def watch() -> None:
            while True:
                peak[0] = max(peak[0], rss_kb(pid))
                await asyncio.sleep(0.05)

        body = "\n".join(json.dumps(p) for p in POISON * 50)
        big = b"{" + b" " * (2 << 20)
        no_key = {"Authorization": ""}
        jobs = [
            send("keepalive", "POST", f"/v1/sessions/s-{i % SESSIONS}/keepalive")
            for i in range(KEEPALIVES)
        ]
        jobs += [send("poison batch", "POST", "/v1/events:batch", content=body) for _ in range(20)]
        jobs += [send("2 MB body", "POST", "/v1/sessions", content=big) for _ in range(10)]
        ka = "/v1/sessions/s-0/keepalive"
        jobs += [send("no key", "POST", ka, headers=no_key) for _ in range(50)]
        random.Random(7).shuffle(jobs)  # the hostile requests arrive among the keepalives
        watcher = asyncio.create_task(watch())
        t0 = time.perf_counter()
        await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - t0
        watcher.cancel()
        detail = {f"s-{i}": (await cl.get(f"/v1/sessions/s-{i}")).json() for i in range(SESSIONS)}
    kept = sum(d["keepalives"] for d in detail.values())
    return {"answers": seen, "elapsed_s": elapsed, "peak_rss_kb": peak[0], "kept": kept}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, key = start(Path(tmp))
        try:
            rest = rss_kb(proc.pid)
            out = asyncio.run(run(url, key, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    answers = out["answers"]
    print(f"bench.hostile: {KEEPALIVES} keepalives at {CONCURRENCY} concurrent + hostile traffic")
    for kind, counts in answers.items():
        print(f"  {kind:14} {dict(sorted(counts.items()))}")
    ok = answers["keepalive"].get(200, 0)
    fives = sum(n for k, c in answers.items() for s, n in c.items() if s >= 500)
    print(f"  valid keepalives acknowledged {ok}/{KEEPALIVES}; 5xx answers {fives}")
    print(f"  keepalives in the views {out['kept']} (acknowledged {ok})")
    print(f"  server RSS at rest {rest / 1024:.0f} MB, peak {out['peak_rss_kb'] / 1024:.0f} MB")
    print(f"  wall time {out['elapsed_s']:.2f} s")
    return 0 if ok == KEEPALIVES and fives == 0 and out["kept"] == ok else 1


if __name__ == "__main__":
    sys.exit(main())
