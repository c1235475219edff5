"""Sealed personal values and `ledger replay erase`: the values are gone from the event
database, the views database and the blob folder (read as raw file bytes), yet checkpoints and
inclusion proofs made before the erasure still verify, the erasure is an event of its own,
and the live views equal a rebuild. Values logged in clear are reported, not hidden."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.cli import main
from domain import commands as c
from domain import merkle
from domain.errors import InvalidCommandError
from domain.rules import validate
from persistence.erasure import erase
from persistence.schema import sqlite_path
from projections.tables import VIEW_NAMES
from tests.conftest import bearer
from tests.replay import point_cli_at

SECRETS = ("Zelda Quartermain", "zelda@example.org", "Checkout of order 77", "told me so")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_hold(paths: list[Path], text: str) -> list[str]:
    """The files (and their -wal siblings) whose raw bytes contain `text`."""
    out = []
    for p in paths:
        for f in (p, p.with_name(p.name + "-wal")):
            if f.exists() and text.encode() in f.read_bytes():
                out.append(f.name)
    return out


@pytest.fixture
def history(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    run_ = container.ledger.execute
    log_sha, size = container.blobs.put(b"console: Zelda Quartermain logged in\n")
    run_(
        c.StartSession(
            session_id="z1", name=SECRETS[2], project="web", user=SECRETS[0],
            tags={"email": SECRETS[1], "team": "blue"}, by="zq-key", idempotency_key="k1",
        )
    )  # fmt: skip
    run_(c.KeepAlive(session_id="z1", path="/cart"))
    run_(c.Annotate(session_id="z1", annotation_id="a1", text="she " + SECRETS[3]))
    run_(c.UploadLog(session_id="z1", kind="console", content_type="text/plain", size=size,
                     sha256=log_sha))  # fmt: skip
    clock.advance(40)
    run_(c.StopSession(session_id="z1", reason=SECRETS[3]))
    run_(c.StartSession(session_id="other", project="web", user="ann"))
    point_cli_at(container, monkeypatch)
    container.log_keys.keys()
    container.runner.catch_up()
    return {"log_sha": log_sha}


def db_files(container: Any) -> list[Path]:
    s = container.settings
    return [p for p in (sqlite_path(s.database_url), sqlite_path(s.views_url)) if p is not None]


def test_the_log_holds_commitments_and_the_api_shows_the_values(
    container: Any, client: TestClient, admin_key: str, history: dict[str, Any]
) -> None:
    stored = container.store.load_stream("z1")
    raw = json.loads(stored[0].payload)
    assert set(raw["user"]) == {"$sealed"} and raw["tags"]["team"] == "blue"
    assert set(raw["tags"]["email"]) == {"$sealed"}
    assert SECRETS[0].encode() not in b"".join(e.payload for e in stored)
    detail = client.get("/v1/sessions/z1", headers=bearer(admin_key)).json()
    assert detail["user"] == SECRETS[0] and detail["tags"]["email"] == SECRETS[1]
    events = client.get("/v1/sessions/z1/events", headers=bearer(admin_key)).json()["events"]
    assert events[0]["payload"]["user"] == SECRETS[0]
    assert set(events[0]["logged_payload"]["user"]) == {"$sealed"}


def test_erase_destroys_the_values_and_keeps_every_proof(
    container: Any,
    client: TestClient,
    admin_key: str,
    history: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, out, _ = run(capsys, "checkpoint", "--save", str(tmp_path / "witness"))
    assert code == 0
    code, bundle, _ = run(capsys, "prove", "z1")
    assert code == 0
    assert files_hold(db_files(container), SECRETS[0])  # before: in the opened values

    code, out, err = run(capsys, "erase", "z1", "--yes")
    assert code == 0, out + err
    assert "sealed value(s) destroyed, 1 blob(s)" in out

    container.runner.catch_up()
    for secret in SECRETS:
        assert files_hold(db_files(container), secret) == [], secret
    assert not container.blobs.exists(history["log_sha"])
    gone = client.get("/v1/sessions/z1/logs/console", headers=bearer(admin_key))
    assert gone.status_code == 410 and gone.json()["type"].endswith("content-erased")
    detail = client.get("/v1/sessions/z1", headers=bearer(admin_key)).json()
    assert detail["user"] is None and detail["name"] is None
    assert detail["tags"] == {"team": "blue"}
    assert [a["text"] for a in detail["annotations"]] == [None]
    assert client.get("/v1/sessions/other", headers=bearer(admin_key)).json()["user"] == "ann"
    types = [e.type for e in container.store.load_stream("z1")]
    assert types[-1] == "Erased"

    # The checkpoint kept before the erasure, and the proofs made then, still hold.
    code, out, err = run(capsys, "verify", "--checkpoint", str(tmp_path / "witness"))
    assert code == 0, out + err
    lines = [json.loads(line) for line in bundle.splitlines()]
    _, old_size, old_root = lines[0]["checkpoint"].splitlines()[:3]
    for line in lines[1:]:
        leaf = base64.b64decode(line["leaf"])
        index = line["leaf_index"]
        proof = [base64.b64decode(h) for h in line["proof"]]
        merkle.verify_inclusion(
            index, int(old_size), merkle.leaf_hash(leaf), proof, base64.b64decode(old_root)
        )
        assert container.store.tree.leaves(index, index + 1)[0] == leaf


def test_after_erasure_the_live_views_equal_a_rebuild(
    container: Any, client: TestClient, admin_key: str, history: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert run(capsys, "erase", "z1", "--yes")[0] == 0
    container.runner.catch_up()
    before = {v: dump(container, v) for v in VIEW_NAMES}
    code, out, err = run(capsys, "rebuild")
    assert code == 0, out + err
    assert {v: dump(container, v) for v in VIEW_NAMES} == before


def dump(container: Any, view: str) -> Any:
    path = sqlite_path(container.settings.views_url)
    assert path is not None
    with sqlite3.connect(path) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE ?", (f"%{view}%",)
            )
        ]
        return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}


def test_values_logged_in_clear_are_reported(
    container: Any, history: dict[str, Any], clock: Any
) -> None:
    # A tag key named personal only after it was logged: its value is in the log in clear.
    container.ledger.execute(c.StartSession(session_id="z2", tags={"badge": "B-17"}))
    container.store.personal_keys = (*container.store.personal_keys, "badge")
    done = erase(container.store, container.blobs, "z2", clock)
    assert not done.complete
    assert done.in_clear == [(container.store.load_stream("z2")[0].position, '["tags","badge"]')]


def test_erase_refuses_what_it_cannot_do(
    container: Any, history: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    container.ledger.execute(c.RecordContext.of("abc", {"cpu": 4}))
    code, _, err = run(capsys, "erase", "z1")
    assert code == 2 and "--yes" in err
    code, _, err = run(capsys, "erase", "nobody", "--yes")
    assert code == 2 and "no session nobody" in err
    for hostile in ("context:abc", "../z1", "z1\x00", "z" * 5000, "z1' OR '1'='1"):
        code, _, err = run(capsys, "erase", hostile, "--yes")
        assert code == 2 and "Traceback" not in err, hostile
    assert container.store.load_stream("z1")[-1].type == "Stopped"  # nothing appended


def test_only_the_erasure_decides_an_erasure(container: Any, history: dict[str, Any]) -> None:
    head = container.store.head_digest()
    with pytest.raises(InvalidCommandError):
        container.ledger.execute(c.EraseSession(session_id="z1"))
    assert container.store.head_digest() == head


def test_a_client_cannot_write_the_sealed_mark(container: Any) -> None:
    for cmd in (
        c.StartSession(session_id="x", tags={"$sealed": "0" * 64}),
        c.StartSession(session_id="x", parameters={"a": {"$sealed": "y"}}),
        c.UpdateDetails(session_id="x", changes={"attributes": {"$sealed": "y"}}),
        c.StopSession(session_id="x", reason="expired"),
    ):
        with pytest.raises(InvalidCommandError):
            validate(cmd)


def test_erasure_sets_exactly_the_fields_that_hold_personal_values() -> None:
    from domain.personal import ERASABLE, scrubbed
    from domain.state import new_state

    # An Erased event's `state` is what the fold applies: a field scrubbed but not applied
    # would keep its value in live views while a rebuild reads it erased.
    assert set(scrubbed(new_state("x"), ("email",))) == ERASABLE
