"""`ledger replay checkpoint`, `verify --checkpoint` and `prove`: checkpoints kept outside the
server catch an insider who rewrote the events, the chain and the tree alike; a witness folder
refuses a checkpoint that does not extend the last it kept; proofs verify against the root."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from domain import commands as c
from domain import merkle
from persistence import store as store_module
from persistence.note import Signer, sign_note
from persistence.schema import sqlite_path, tree_path
from persistence.signing import Checkpoint, open_checkpoint
from persistence.store import GENESIS_HASH, EventStore, chain_hash
from tests.replay import make_history, point_cli_at


@pytest.fixture
def ledger(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    marks = make_history(container, clock)
    point_cli_at(container, monkeypatch)
    container.log_keys.keys()  # the key the server makes on its first start
    marks["db"] = sqlite_path(container.settings.database_url)
    marks["container"] = container
    return marks


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rewrite(ledger: dict[str, Any], position: int) -> None:
    """An insider's full rewrite: one payload changed, the chain re-hashed after it, and the
    tree rebuilt from the changed events. Everything agrees with itself afterwards."""
    db, url = ledger["db"], ledger["container"].settings.database_url
    conn = sqlite3.connect(db)
    triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for (name,) in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute(
        "UPDATE events SET payload = CAST(REPLACE(CAST(payload AS TEXT), '\"web\"', '\"wex\"')"
        " AS BLOB)"
        " WHERE position = ?",
        (position,),
    )
    before = conn.execute("SELECT hash FROM events WHERE position = ?", (position - 1,))
    prev = (before.fetchone() or (GENESIS_HASH,))[0]
    rows = conn.execute("SELECT * FROM events WHERE position >= ? ORDER BY position", (position,))
    for r in rows.fetchall():
        prev = chain_hash(prev, *r[:7])
        conn.execute("UPDATE events SET hash = ? WHERE position = ?", (prev, r[0]))
    conn.commit()
    conn.close()
    conn = sqlite3.connect(tree_path(db))  # the tree's stored nodes, in their own file
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("DELETE FROM log_nodes")
    conn.commit()
    conn.close()
    store = EventStore(url)
    store.catch_up_tree()
    store.dispose()


def test_saved_checkpoints_catch_a_rewrite_that_agrees_with_itself(ledger, capsys, tmp_path):
    witness = tmp_path / "witness"
    code, note, err = run(capsys, "checkpoint", "--save", str(witness))
    keys = ledger["container"].log_keys.keys()
    first = open_checkpoint(note, keys.verifier_keys)
    assert code == 0 and first.size == 23 and "saved to" in err
    ledger["container"].ledger.execute(c.StartSession(session_id="s7", project="web"))
    assert run(capsys, "checkpoint", "--save", str(witness))[0] == 0
    assert sorted(p.name for p in witness.iterdir()) == [
        f"{23:020d}.checkpoint", f"{24:020d}.checkpoint",
    ]  # fmt: skip
    code, out, _ = run(capsys, "verify", "--checkpoint", str(witness))
    assert code == 0 and "the log extends all 2 saved checkpoints" in out

    rewrite(ledger, 1)  # s1's start, of project web
    code, out, _ = run(capsys, "verify")
    assert code == 0, "a full rewrite agrees with itself: only a saved checkpoint shows it"
    code, out, _ = run(capsys, "verify", "--checkpoint", str(witness), "--json")
    problems = {p["kind"]: p for p in json.loads(out)["problems"]}
    assert code == 1 and set(problems) == {"checkpoint"}
    assert problems["checkpoint"]["count"] == 2
    assert "a leaf in [0, 23) was changed" in problems["checkpoint"]["detail"]
    code, _, err = run(capsys, "checkpoint", "--save", str(witness))
    assert code == 2 and "does not extend" in err
    assert len(list(witness.iterdir())) == 2, "the witness kept nothing of the forked log"


def test_events_not_integrated_yet_are_named_and_a_saved_checkpoint_pins_them(
    ledger, capsys, tmp_path
):
    """The stored tree covers the first block of 16 (the worker's integrator, meanwhile);
    verify checks the other 7 against the root recomputed from them and says so. A rewrite
    among them that re-hashes the chain agrees with itself: a checkpoint saved before shows
    it, as it shows any rewrite."""
    code, out, _ = run(capsys, "verify")
    assert code == 0
    assert "note: the stored tree covers 16 events; the last 7 (not integrated yet)" in out
    witness = tmp_path / "witness"
    assert run(capsys, "checkpoint", "--save", str(witness))[0] == 0
    conn = sqlite3.connect(ledger["db"])
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    tail = conn.execute("SELECT * FROM events WHERE position > 16 ORDER BY position").fetchall()
    first = next(r[0] for r in tail if b'"web"' in r[6])
    prev = conn.execute("SELECT hash FROM events WHERE position = ?", (first - 1,)).fetchone()[0]
    for r in tail[first - 17 :]:
        payload = r[6].replace(b'"web"', b'"wex"')
        prev = chain_hash(prev, *r[:6], payload)
        conn.execute(
            "UPDATE events SET payload = ?, hash = ? WHERE position = ?", (payload, prev, r[0])
        )
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "verify", "--json")
    assert code == 0 and json.loads(out)["tree_integrated"] == 16
    code, out, _ = run(capsys, "verify", "--checkpoint", str(witness), "--json")
    problems = {p["kind"]: p for p in json.loads(out)["problems"]}
    assert code == 1 and set(problems) == {"checkpoint"}
    assert "a leaf in [0, 23) was changed" in problems["checkpoint"]["detail"]


def test_a_stored_tree_far_behind_the_log_is_named_as_deleted_nodes(ledger, capsys, monkeypatch):
    """The writer never lets the stored nodes fall more than TREE_BACKSTOP behind: a tree
    that covers far less was cut short by hand, and verify says so."""
    monkeypatch.setattr(store_module, "TREE_BACKSTOP", 2)
    conn = sqlite3.connect(tree_path(ledger["db"]))
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("DELETE FROM log_nodes")
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "verify")
    assert code == 1
    assert "tree     first bad position 1: the stored tree covers 0 of 23 leaves" in out


def test_a_change_after_the_saved_checkpoints_is_not_blamed_on_them(ledger, capsys, tmp_path):
    saved = tmp_path / "one.checkpoint"
    code, note, _ = run(capsys, "checkpoint")
    saved.write_text(note)
    ledger["container"].ledger.execute(c.StartSession(session_id="late", user="ann", project="web"))
    rewrite(ledger, 24)
    code, out, _ = run(capsys, "verify", "--checkpoint", str(saved))
    assert code == 0 and "the log extends all 1 saved checkpoints" in out


def test_checkpoints_of_another_key_are_refused(ledger, capsys, tmp_path):
    keys = ledger["container"].log_keys.keys()
    other = Signer.generate(keys.origin)
    size, root = ledger["container"].store.tree.latest()
    body = Checkpoint(keys.origin, size, root).body()
    forged = tmp_path / "forged.checkpoint"
    forged.write_text(sign_note(body, [other]))
    code, _, err = run(capsys, "verify", "--checkpoint", str(forged))
    assert code == 2 and "not a checkpoint signed by the log's key" in err
    code, _, _ = run(capsys, "verify", "--checkpoint", str(forged), "--key", other.verifier.key)
    assert code == 0, "an auditor who trusts that key gets the verdict on the log"


def test_prove_gives_each_event_of_a_session_with_its_inclusion_proof(ledger, capsys):
    code, out, _ = run(capsys, "prove", "s1")
    header, *items = [json.loads(line) for line in out.splitlines()]
    checkpoint = open_checkpoint(header["checkpoint"], [header["verifier_key"]])
    stream = ledger["container"].store.load_stream("s1")
    assert code == 0 and [x["leaf_index"] for x in items] == [e.position - 1 for e in stream]
    for item in items:
        leaf = base64.b64decode(item["leaf"])
        assert json.loads(leaf)[2] == "s1"
        proof = [base64.b64decode(h) for h in item["proof"]]
        index, size, root = item["leaf_index"], checkpoint.size, checkpoint.root_hash
        merkle.verify_inclusion(index, size, merkle.leaf_hash(leaf), proof, root)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, merkle.leaf_hash(leaf + b" "), proof, root)
    assert run(capsys, "prove", "nobody")[0] == 2


def test_without_the_servers_key_the_tools_say_so(ledger, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LEDGER_LOG_KEY", str(tmp_path / "elsewhere.key"))
    code, _, err = run(capsys, "checkpoint")
    assert code == 2 and "no log signing key at" in err
    assert not Path(tmp_path / "elsewhere.key").exists()


def test_the_tools_read_the_tree_read_only(ledger):
    from sqlalchemy.exc import OperationalError

    from persistence.settings import Settings
    from replay.source import open_store

    store = open_store(Settings.from_env())
    try:
        assert store.tree.size() == 23
        with pytest.raises(OperationalError), store.tree._engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE forged (x)")
    finally:
        store.dispose()


def test_leaf_hashes_are_the_same_for_verifys_rows_and_any_payload_form() -> None:
    """verify's rows (the chain hash last) hash to the same leaves as the tree's own rows, and
    a payload handed over as memoryview or stored as text is hashed as its bytes."""
    from persistence.chain import row_leaf
    from persistence.tree import leaf_hashes_of

    stored = [
        (1, "s-1", 1, "Started", 1, 1.5, b'{"a":1}'),
        (2, "s-1", 2, "Stopped", 1, 2.25, b"{}"),
    ]
    want = [merkle.leaf_hash(row_leaf(*r)) for r in stored]
    assert leaf_hashes_of(stored) == want
    assert leaf_hashes_of([(*r, b"h" * 32) for r in stored]) == want
    assert leaf_hashes_of([(*r[:6], memoryview(r[6]), b"h") for r in stored]) == want
    assert leaf_hashes_of([(*r[:6], r[6].decode(), b"h") for r in stored]) == want
    assert leaf_hashes_of([(*r[:6], r[6].decode()) for r in stored]) == want
    assert leaf_hashes_of([]) == []
