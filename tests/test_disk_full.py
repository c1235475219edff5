"""A real full disk: the ledger on a small tmpfs answers 503 problem+json with Retry-After
when the log cannot grow, appends nothing half-written, and recovers by itself once space
is freed (needs root to mount the tmpfs; skipped elsewhere)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.app import create_app
from api.bootstrap import bootstrap
from persistence.settings import Settings
from replay import verify


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_answers_503_and_recovers(small_disk: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{small_disk}/ledger.db",
        views_url=f"sqlite:///{small_disk.parent}/views.db",  # the views live elsewhere
        blob_dir=small_disk / "blobs",
        expiry_interval=3600,
    )
    container = bootstrap(settings)
    keys.create_schema(container.store.write_engine)
    key = keys.create(container.store.write_engine, "admin", ["admin"])
    filler = small_disk / "filler"
    free = subprocess.run(["df", "--output=avail", "-B1", str(small_disk)], capture_output=True)
    avail = int(free.stdout.split()[-1])
    filler.write_bytes(b"\0" * max(0, avail - 400_000))
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(container=container), headers=auth) as client:
        assert client.post("/v1/sessions", json={"id": "s"}).status_code == 201
        statuses = []
        for i in range(3000):
            r = client.post("/v1/sessions/s/keepalive", json={"path": f"/{i}/" + "p" * 900})
            statuses.append(r.status_code)
            if r.status_code != 200:
                break
        assert r.status_code == 503, sorted(set(statuses))
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["Retry-After"]) > 0
        head = container.store.head_digest()[0]
        assert head == statuses.count(200) + 1  # every acknowledged event, nothing more
        r = client.post("/v1/sessions/s/logs/console", content=b"x" * 600_000)
        assert r.status_code == 503  # the blob store is on the full disk too

        filler.unlink()
        r = client.post("/v1/sessions/s/keepalive", json={"path": "/after"})
        assert r.status_code == 200 and r.json()["position"] == head + 1
        assert container.store.checkpointer is not None
        runs = container.store.checkpointer.runs
        for _ in range(50):  # the checkpoint thread survived the full disk and runs again
            if container.store.checkpointer.runs > runs:
                break
            client.post("/v1/sessions/s/keepalive")
            time.sleep(0.05)
        assert container.store.checkpointer.runs > runs
    assert verify.verify(container.store, None, None).ok
    container.close()
