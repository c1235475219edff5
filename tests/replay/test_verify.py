"""`ledger replay verify` on a real database file: intact, then each kind of tampering done
behind the store's back (triggers dropped), each named by its first bad position."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from persistence.schema import sqlite_path, tree_path
from persistence.settings import Settings
from persistence.store import GENESIS_HASH, EventStore, chain_hash
from replay.source import open_blobs, open_store
from replay.verify import Scan, Verdict, verify
from tests.replay import make_history, point_cli_at


@pytest.fixture
def ledger(container: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    marks = make_history(container, clock)
    point_cli_at(container, monkeypatch)
    marks["db"] = sqlite_path(container.settings.database_url)
    marks["container"] = container
    return marks


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["replay", *argv])
    return code, capsys.readouterr().out


def tamper(db: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER events_refuse_update")
    conn.execute("DROP TRIGGER events_refuse_delete")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.close()


def row(db: Path, position: int) -> tuple[Any, ...]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM events WHERE position = ?", (position,)).fetchone()


def test_intact_log_exits_zero_and_prints_the_head_digest(ledger, capsys):
    code, out = run(capsys, "verify")
    head = row(ledger["db"], 23)
    assert code == 0
    assert f"head digest 23:{head[7].hex()}" in out
    assert "checked 23 events in 6 streams, 2 blob references" in out
    code, digest = run(capsys, "digest")
    assert digest.strip() == f"23:{head[7].hex()}"


def test_json_report_is_machine_readable(ledger, capsys):
    code, out = run(capsys, "verify", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["events"] == 23 and doc["problems"] == []


def test_edited_payload_is_named_by_its_position(ledger, capsys):
    tamper(
        ledger["db"],
        ("UPDATE events SET payload = ? WHERE position = 5", (b'{"status":"failed"}',)),
    )
    code, out = run(capsys, "verify")
    assert code == 1
    assert "link     first bad position 5:" in out
    assert "warning: append-only trigger events_refuse_update is missing" in out


def test_deleted_row_is_a_gap_and_a_broken_link(ledger, capsys):
    tamper(ledger["db"], ("DELETE FROM events WHERE position = 5", ()))
    code, out = run(capsys, "verify", "--json")
    problems = {p["kind"]: p["first_position"] for p in json.loads(out)["problems"]}
    assert code == 1
    # The tree the events make no longer matches the stored one from the first block on.
    assert problems == {"gap": 5, "link": 6, "version": 6, "tree": 1}


def test_swapped_rows_break_the_chain_where_the_first_moved(ledger, capsys):
    swap = "UPDATE events SET position = ? WHERE position = ?"
    tamper(ledger["db"], (swap, (-1, 3)), (swap, (3, 4)), (swap, (4, -1)))
    code, out = run(capsys, "verify", "--json")
    problems = {p["kind"]: p["first_position"] for p in json.loads(out)["problems"]}
    assert code == 1
    assert problems["link"] == 3 and problems["version"] == 3


def test_inserted_row_with_a_forged_hash_still_breaks_the_next_link(ledger, capsys):
    db = ledger["db"]
    prev = row(db, 10)[7]
    payload = b'{"by":null,"path":"/forged","visible":true}'
    forged = chain_hash(prev, 11, "s9", 1, "KeptAlive", 1, row(db, 10)[5], payload)
    shift = "UPDATE events SET position = ? * (position + ?) WHERE position > ?"
    tamper(
        db,
        (shift, (-1, 1, 10)),  # move the tail out of the way, then back one further on
        ("UPDATE events SET position = -position WHERE position < 0", ()),
        (
            "INSERT INTO events VALUES (11, 's9', 1, 'KeptAlive', 1, ?, ?, ?)",
            (row(db, 10)[5], payload, forged),
        ),
    )
    code, out = run(capsys, "verify", "--json")
    problems = {p["kind"]: p["first_position"] for p in json.loads(out)["problems"]}
    assert code == 1
    assert problems == {"link": 12, "tree": 1}


def test_changed_blob_is_named_by_the_event_that_references_it(ledger, capsys):
    blobs = ledger["container"].blobs
    blobs.path(ledger["sha"]).write_bytes(b"console log line 1\nEDITED\n")
    code, out = run(capsys, "verify")
    assert code == 1
    assert f"blob     first bad position 6: blob {ledger['sha']} is changed" in out
    blobs.path(ledger["shot"]).unlink()
    code, out = run(capsys, "verify", "--json")
    blob = next(p for p in json.loads(out)["problems"] if p["kind"] == "blob")
    assert blob["count"] == 2


def test_earlier_digest_is_a_prefix_of_a_grown_log(ledger, capsys):
    db = ledger["db"]
    early = f"9:{row(db, 9)[7].hex()}"
    code, out = run(capsys, "verify", "--from-digest", early)
    assert code == 0 and "the earlier digest is a prefix of this log" in out
    code, out = run(capsys, "verify", "--from-digest", f"9:{'ab' * 32}")
    assert code == 1 and "digest   first bad position 9" in out
    code, out = run(capsys, "verify", "--from-digest", f"99:{'ab' * 32}")
    assert code == 1 and "the log ends at 23, before the digest position" in out


def test_rewritten_history_passes_alone_but_fails_the_earlier_digest(ledger, capsys):
    """A forger who edits an event and rehashes everything after it makes a consistent
    chain, which the stored Merkle tree still exposes; one who also rebuilds the tree makes
    a consistent log, which only a digest saved before the rewrite exposes."""
    db = ledger["db"]
    early = f"9:{row(db, 9)[7].hex()}"
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER events_refuse_update")
    conn.execute(
        "UPDATE events SET payload = ? WHERE position = 5",
        (b'{"by":null,"status":"failed","test":"t_login"}',),
    )
    prev = row(db, 4)[7]
    for r in conn.execute("SELECT * FROM events WHERE position >= 5 ORDER BY position").fetchall():
        prev = chain_hash(prev, *r[:7])
        conn.execute("UPDATE events SET hash = ? WHERE position = ?", (prev, r[0]))
    conn.commit()
    code, out = run(capsys, "verify")
    assert code == 1 and "tree     first bad position 1: leaves [0, 16)" in out
    conn.close()
    conn = sqlite3.connect(tree_path(db))  # the tree's stored nodes, in their own file
    conn.execute("DROP TRIGGER log_nodes_refuse_delete")
    conn.execute("DELETE FROM log_nodes")
    conn.commit()
    conn.close()
    insider = EventStore(ledger["container"].settings.database_url)
    insider.catch_up_tree()
    insider.dispose()
    code, out = run(capsys, "verify")
    assert code == 0 and "no saved checkpoint given" in out
    code, out = run(capsys, "verify", "--from-digest", early)
    assert code == 1 and "digest   first bad position 9" in out


def test_bad_digest_argument_is_a_usage_error(ledger, capsys):
    assert main(["replay", "verify", "--from-digest", "nonsense"]) == 2
    assert "a digest is POSITION:HASH" in capsys.readouterr().err


def test_missing_database_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path}/nope.db")
    assert main(["replay", "verify"]) == 2
    assert "no ledger database at" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()


# Records with awkward values: non-ASCII ids, floats whose shortest repr matters, positions
# past 32 bits, nested payloads. verify's inlined link must hash them exactly as chain_hash.
ODD_RECORDS = [
    (1, "s1", 1, "Started", 1, 1700000000.0, b"{}"),
    (2, "s\u00e9/\u00fc-\u540d", 1, "KeptAlive", 2, 0.1, b'{"path":"/\xc3\xbc"}'),
    (3, "s1", 2, "Stopped", 1, 1e16, b'{"a":[1,2.5,null],"b":{"c":true}}'),
    (4, "x" * 300, 1, "ResultRecorded", 7, 1700000000.123456, b'{"n":-1}'),
    (2**40, "s1", 3, "Deleted", 1, 5e-324, b'{"by":"ann"}'),
]


def chained(records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    prev, rows = GENESIS_HASH, []
    for r in records:
        prev = chain_hash(prev, *r)
        rows.append((*r, prev))
    return rows


def scan(rows: list[tuple[Any, ...]], chunk: int = 2) -> Verdict:
    s = Scan(Verdict(), None, None)
    for i in range(0, len(rows), chunk):
        s.feed(rows[i : i + chunk])
    return s.finish()


def test_the_inlined_link_is_byte_identical_to_chain_hash():
    rows = chained(ODD_RECORDS)
    v = scan(rows)
    assert "link" not in v.findings and "version" not in v.findings
    assert v.head == (2**40, rows[-1][7]) and v.events == 5 and v.streams == 3
    assert v.findings["gap"].first_position == 5  # only the deliberate jump to 2**40
    bumped = {str: lambda x: x + "x", int: lambda x: x + 1, bytes: lambda x: x + b" "}
    bumped[float] = lambda x: math.nextafter(x, math.inf)  # one ulp still breaks the link
    for i, r in enumerate(rows):
        for f in range(1, 7):  # every hashed field but the position (a gap check of its own)
            edited = [*rows]
            edited[i] = (*r[:f], bumped[type(r[f])](r[f]), *r[f + 1 :])
            assert scan(edited).findings["link"].first_position == r[0], (i, f)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 22])
def test_chunk_boundaries_do_not_change_the_verdict(ledger, chunk):
    db = ledger["db"]
    early = (9, row(db, 9)[7])
    tamper(
        db,
        ("DELETE FROM events WHERE position IN (5, 6, 14)", ()),
        ("UPDATE events SET payload = ? WHERE position = 17", (b'{"status":"failed"}',)),
    )
    ledger["container"].blobs.path(ledger["shot"]).unlink()
    settings = Settings.from_env()
    store = open_store(settings)
    try:
        whole = verify(store, open_blobs(settings), early).as_dict()
        chunked = verify(store, open_blobs(settings), early, chunk=chunk).as_dict()
    finally:
        store.dispose()
    problems = {p["kind"]: (p["first_position"], p["count"]) for p in whole["problems"]}
    assert problems == {
        "gap": (5, 2), "link": (7, 3), "version": (8, 1), "blob": (12, 1), "tree": (1, 1),
    }  # fmt: skip
    assert whole["digest_checked"] and whole["events"] == 20
    assert chunked == whole


def forge(db: Path, stream: str, kind: str, payload: Any) -> int:
    """Append a row as an insider would: a plain INSERT (the triggers refuse only UPDATE
    and DELETE) chained correctly from the last row, so only its content gives it away.
    `payload` bytes are hashed as they are; text is stored as text (SQLite keeps the
    type it is given) and hashed as its UTF-8 bytes."""
    conn = sqlite3.connect(db)
    position, prev, at = conn.execute(
        "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1"
    ).fetchone()
    raw = payload.encode() if isinstance(payload, str) else payload
    h = chain_hash(prev, position + 1, stream, 1, kind, 1, at, raw)
    conn.execute(
        "INSERT INTO events VALUES (?, ?, 1, ?, 1, ?, ?, ?)",
        (position + 1, stream, kind, at, payload, h),
    )
    conn.commit()
    conn.close()
    return int(position + 1)


@pytest.mark.parametrize(
    ("kind", "payload", "problem", "detail"),
    [
        ("KeptAlive", b"[1, 2]", "payload", "KeptAlive: the payload is a JSON list"),
        ("KeptAlive", b"\x00not json", "payload", "the payload is not JSON"),
        ("KeptAlive", b'{"path":"/x","visible":{"a":1}}', "payload", "field visible"),
        ("LogUploaded", b'{"kind":"console","sha256":5,"size":3}', "payload", "field sha256"),
        ("Started", b'{"tags":5}', "payload", "Started: field tags of the wrong type"),
        ("KeptAlive", '{"path":"/x","visible":true}', "row", "a column of an unexpected type"),
    ],
)
def test_a_forged_row_of_the_wrong_shape_is_named_not_a_crash(
    ledger, capsys, kind, payload, problem, detail
):
    bad = forge(ledger["db"], "forged", kind, payload)
    code, out = run(capsys, "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["ok"]
    found = {p["kind"]: p for p in doc["problems"]}
    assert found[problem]["first_position"] == bad and detail in found[problem]["detail"]
    assert doc["events"] == bad  # the pass went on to the end
    code, text = run(capsys, "verify")
    assert code == 1 and f"{problem:<8} first bad position {bad}" in text


def test_a_log_without_its_tree_is_named_not_a_crash(ledger, capsys):
    conn = sqlite3.connect(tree_path(ledger["db"]))
    conn.execute("DROP TABLE log_nodes")
    conn.commit()
    conn.close()
    code, out = run(capsys, "verify")
    assert code == 1 and "tree     first bad position 1: the database holds no Merkle tree" in out
