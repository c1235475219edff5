"""The transparency log over HTTP (/v1/log): a checkpoint the published key verifies, whose
root the served leaves make, proofs that RFC 9162's verifiers accept, ranges refused by name,
keys checked; and the independent verifier (examples/verify_log.py) against a live server,
catching an insider's rewrite of an event and of the whole tree."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container
from domain import merkle
from persistence.schema import tree_path
from persistence.signing import open_checkpoint
from tests.conftest import ROOT, LiveServer, bearer, ledger_env, start_server

VERIFY_LOG = ROOT / "examples" / "verify_log.py"


def fill(client: TestClient, sessions: int = 7, keepalives: int = 3) -> None:
    for i in range(sessions):
        assert client.post("/v1/sessions", json={"id": f"s{i}"}).status_code == 201
        for _ in range(keepalives):
            assert client.post(f"/v1/sessions/s{i}/keepalive").status_code == 200


def checkpoint(client: TestClient) -> tuple[int, bytes]:
    note = client.get("/v1/log/checkpoint")
    assert note.status_code == 200
    assert note.headers["content-type"].startswith("text/plain")
    verifier = client.get("/v1/log/key").text.splitlines()[0]
    opened = open_checkpoint(note.text, [verifier])
    return opened.size, opened.root_hash


def all_leaves(client: TestClient, size: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < size:
        page = client.get("/v1/log/leaves", params={"start": len(out), "end": size}).json()
        assert page["leaves"], "a page stopped short of the tree"
        out += [base64.b64decode(x) for x in page["leaves"]]
    return out


def test_the_signed_root_is_the_tree_of_the_served_leaves(client: TestClient) -> None:
    fill(client)
    size, root = checkpoint(client)
    events = client.get("/v1/events", params={"limit": 1000}).json()["events"]
    assert size == len(events) == 7 * 4
    leaves = all_leaves(client, size)
    assert merkle.root([merkle.leaf_hash(leaf) for leaf in leaves]) == root
    for i, (leaf, event) in enumerate(zip(leaves, events, strict=True)):
        fmt, position, stream, version, type_, _schema, at, payload = json.loads(leaf)
        assert (fmt, position, stream, version, type_) == (
            1, i + 1, event["stream_id"], event["version"], event["type"],
        )  # fmt: skip
        assert (payload, at, event["leaf_index"]) == (
            event["payload"],
            event["recorded_at_seconds"],
            i,
        )


def test_proofs_verify_against_the_checkpoints(client: TestClient) -> None:
    fill(client, sessions=3, keepalives=1)
    old_size, old_root = checkpoint(client)
    fill_more = [client.post(f"/v1/sessions/s{i % 3}/keepalive") for i in range(11)]
    assert all(r.status_code == 200 for r in fill_more)
    size, root = checkpoint(client)
    leaves = all_leaves(client, size)
    for i in range(size):
        got = client.get("/v1/log/proof/inclusion", params={"leaf_index": i, "tree_size": size})
        path = [base64.b64decode(h) for h in got.json()["hashes"]]
        merkle.verify_inclusion(i, size, merkle.leaf_hash(leaves[i]), path, root)
        forged = merkle.leaf_hash(leaves[i] + b" ")
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(i, size, forged, path, root)
    got = client.get("/v1/log/proof/consistency", params={"first": old_size, "second": size})
    assert got.json()["first"] == old_size and got.json()["second"] == size
    proof = [base64.b64decode(h) for h in got.json()["hashes"]]
    merkle.verify_consistency(old_size, size, old_root, root, proof)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/log/proof/inclusion", {"leaf_index": 4, "tree_size": 4}, "index"),
        ("/v1/log/proof/inclusion", {"leaf_index": 0, "tree_size": 5}, "size"),
        ("/v1/log/proof/consistency", {"first": 3, "second": 2}, "first"),
        ("/v1/log/proof/consistency", {"first": 1, "second": 9}, "second"),
        ("/v1/log/leaves", {"start": 9, "end": 12}, "end"),
    ],
)
def test_ranges_outside_the_tree_are_refused_by_name(
    client: TestClient, path: str, params: dict[str, int], field: str
) -> None:
    fill(client, sessions=1, keepalives=3)  # four leaves
    got = client.get(path, params=params)
    assert got.status_code == 400
    assert got.headers["content-type"] == "application/problem+json"
    assert got.json()["field"] == field


@pytest.mark.parametrize("params", [{"leaf_index": -1, "tree_size": 1}, {"leaf_index": 0}])
def test_malformed_parameters_are_refused(client: TestClient, params: dict[str, int]) -> None:
    assert client.get("/v1/log/proof/inclusion", params=params).status_code == 422


def test_the_log_needs_an_audit_key(client: TestClient, container: Container) -> None:
    engine = container.store.write_engine
    reader = keys.create(engine, "reader", ["read"])
    auditor = keys.create(engine, "auditor", ["audit"])
    limited = keys.create(engine, "limited", ["audit"], projects=["p1"])
    for path in ("/v1/log/checkpoint", "/v1/log/key", "/v1/log/leaves?start=0&end=1"):
        assert client.get(path, headers={"Authorization": ""}).status_code == 401
        assert client.get(path, headers=bearer(reader)).status_code == 403
        assert client.get(path, headers=bearer(limited)).status_code == 403
        assert client.get(path, headers=bearer(auditor)).status_code == 200


def test_the_key_file_is_created_once_and_never_served(
    client: TestClient, container: Container
) -> None:
    path = container.settings.log_key
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    secret = path.read_text().strip().split("+")[-1]
    public = container.log_keys.keys().verifier_key
    answers = [client.get(p).text for p in ("/v1/log/key", "/v1/log/checkpoint")]
    assert answers[0].splitlines()[0] == public
    assert all(secret not in text for text in answers)
    container.log_keys.keys()
    assert path.read_text().strip().split("+")[-1] == secret  # the same key, not a new one


def verify_log(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    verifier = httpx.get(server.url + "/v1/log/key", headers=bearer(server.key)).text
    cmd = [sys.executable, str(VERIFY_LOG), server.url, server.key, verifier.splitlines()[0]]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)


def tamper(db: Path, sql: str) -> None:
    """What an insider with the database file can do: drop the guards, rewrite rows."""
    # The server is live: take the write lock before reading, or a projection commit
    # between our read and our first write fails the upgrade at once (SQLITE_BUSY_SNAPSHOT).
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for (name,) in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute(sql)
    conn.execute("COMMIT")
    conn.close()


def test_the_independent_verifier_catches_a_rewritten_event(
    live_server: LiveServer, tmp_path: Path
) -> None:
    with httpx.Client(base_url=live_server.url, headers=bearer(live_server.key)) as cl:
        for i in range(20):
            assert cl.post("/v1/sessions", json={"id": f"s{i}", "project": "alice"}).is_success
        # The projection worker's integrator stores the first block's nodes: from then on
        # they pin the first block's events, whatever the events table says.
        deadline = time.monotonic() + 30
        while cl.get("/healthz").json()["tree_integrated"] < 16:
            assert time.monotonic() < deadline, "the worker never integrated the tree"
            time.sleep(0.05)
    saved = tmp_path / "checkpoint.txt"
    first = verify_log(live_server, "--save", str(saved))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "OK all 20 leaves" in first.stdout
    assert verify_log(live_server, "--leaf", "7").returncode == 0
    tamper(live_server.db, "UPDATE events SET payload = REPLACE(payload, 'alice', 'mallory') "
           "WHERE position = 3")  # fmt: skip
    caught = verify_log(live_server)
    assert caught.returncode != 0 and "altered" in caught.stderr
    # An insider who also rewrites the tree gets a consistent new root, but not one that
    # extends the checkpoint an auditor saved before.
    live_server.proc.terminate()
    live_server.proc.wait(timeout=10)
    tamper(tree_path(live_server.db), "DELETE FROM log_nodes")  # the tree's own file
    proc, url = start_server(ledger_env(tmp_path), tmp_path / "again.log")
    try:
        again = LiveServer(url, proc, live_server.db, live_server.key)
        rewritten = verify_log(again)
        assert rewritten.returncode == 0, "the rewrite is self-consistent: only a witness sees it"
        witnessed = verify_log(again, "--saved", str(saved))
        assert witnessed.returncode != 0 and "forked" in witnessed.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_log_key_rotation_keeps_old_checkpoints_verifiable(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    fill(client, sessions=1, keepalives=0)
    before = client.get("/v1/log/checkpoint").text
    monkeypatch.setenv("LEDGER_LOG_KEY", str(client.app.state.container.settings.log_key))
    assert main(["log-key", "show"]) == 0
    shown = capsys.readouterr().out.split()
    assert main(["log-key", "rotate"]) == 0
    rotated = capsys.readouterr().out.split()
    assert len(shown) == 1 and len(rotated) == 2 and rotated[1] == shown[0] != rotated[0]
    served = client.get("/v1/log/key").text.split()
    assert served == rotated, "the server signs with the new key at once"
    after = client.get("/v1/log/checkpoint").text
    assert open_checkpoint(before, rotated).size == open_checkpoint(after, rotated).size == 1
    with pytest.raises(ValueError):
        open_checkpoint(after, shown)  # the retired key did not sign the new checkpoint
