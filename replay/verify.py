"""`ledger replay verify`: recompute the hash chain, the stream versions and the blob hashes
over the whole log in one streaming pass, and name the first bad position of each kind.

An insider can write a row whose chain is right (recomputed from the previous hash) but
whose content no ledger wrote: a column of another type (SQLite stores what it is given),
a payload that is not JSON, not a JSON object, or a field of another type than its event
class declares (`PAYLOAD_FIELDS`, from the domain's event classes). Each is named by its
position, as kind "row" or "payload", and the pass goes on: nothing in a row can stop it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text

from domain.errors import LedgerError
from domain.personal import PERSONAL_FIELDS
from domain.session import ALL_EVENT_CLASSES
from persistence.blobs import BlobStore
from persistence.sealing import is_sealed
from persistence.store import GENESIS_HASH, EventStore
from replay import tree_jobs, witness
from replay.log_rows import CHUNK, Row, read_chunks
from replay.progress import Progress

# Events that name blobs: the uploads, and an erasure (the blobs it destroyed).
BLOB_EVENTS = frozenset({"LogUploaded", "ArtifactAttached", "Erased"})
GUARDS = ("events_refuse_update", "events_refuse_delete")
# What each kind of problem usually means, for the report.
KINDS = {
    "gap": "a position is missing (a row was deleted)",
    "link": "the event does not hash to its stored hash from the previous one "
    "(it or its predecessor was edited, moved, inserted or removed)",
    "version": "the stream's versions are not 1..n in position order",
    "blob": "a referenced blob is missing or no longer matches its sha256",
    "digest": "the earlier digest is not a prefix of this log",
    "row": "a column holds a value of a type no ledger writes (the row was written by hand)",
    "payload": "the payload is not a JSON object of its event type's fields and types "
    "(written behind the ledger's back)",
    "tree": "the stored Merkle tree does not match the events (either was changed without "
    "the other)",
    "checkpoint": "the log does not extend a checkpoint signed earlier (rewritten, truncated "
    "or forked since)",
}
# Event attributes the library keeps out of the stored payload.
_NOT_PAYLOAD = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
Fields = tuple[tuple[str, tuple[type, ...]], ...]


class _SealedMeta(type):
    def __instancecheck__(cls, value: Any) -> bool:
        return is_sealed(value)


class Sealed(metaclass=_SealedMeta):
    """Matches a sealed personal value (persistence/sealing.py) in a type check."""


def _accepted(hint: Any) -> tuple[type, ...]:
    """The JSON-decoded types a field annotated `hint` may hold (a float may be written as
    an integer; an unknown annotation accepts anything)."""
    if hint is Any:
        return (object,)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _accepted(arg))
    if origin is not None:
        return (origin,) if isinstance(origin, type) else (object,)
    if hint is float:
        return (int, float)
    return (hint,) if isinstance(hint, type) else (object,)


def payload_fields() -> dict[tuple[str, int], Fields]:
    """Per (event type, current schema version): each payload field and the types it may
    hold, read from the domain's event classes. Older versions' payloads (upcast when
    read) are held to being JSON objects only."""
    out: dict[tuple[str, int], Fields] = {}
    for name, cls in ALL_EVENT_CLASSES.items():
        if not dataclasses.is_dataclass(cls):
            continue
        hints = typing.get_type_hints(cls)
        personal = PERSONAL_FIELDS.get(name, ())
        out[(name, getattr(cls, "class_version", 1))] = tuple(
            (f.name, (*_accepted(hints[f.name]), *((Sealed,) if f.name in personal else ())))
            for f in dataclasses.fields(cls)
            if f.name not in _NOT_PAYLOAD and f.name in hints
        )
    return out


PAYLOAD_FIELDS = payload_fields()


@dataclass
class Finding:
    kind: str
    first_position: int
    detail: str
    count: int = 1


@dataclass
class Verdict:
    events: int = 0
    streams: int = 0
    blobs: int = 0
    head: tuple[int, bytes] = (0, GENESIS_HASH)
    findings: dict[str, Finding] = field(default_factory=dict)
    missing_guards: list[str] = field(default_factory=list)
    digest_checked: bool = False
    checkpoints: list[int] = field(default_factory=list)  # sizes of the saved ones checked
    tree_integrated: int = 0  # events the stored tree's nodes cover

    @property
    def ok(self) -> bool:
        return not self.findings

    def flag(self, kind: str, position: int, detail: str) -> None:
        seen = self.findings.get(kind)
        if seen is None:
            self.findings[kind] = Finding(kind, position, detail)
        else:
            seen.count += 1
            if position < seen.first_position:  # missing blobs are judged at the end
                seen.first_position, seen.detail = position, detail

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "streams": self.streams,
            "blobs": self.blobs,
            "head": {"position": self.head[0], "hash": self.head[1].hex()},
            "problems": [
                {**vars(f), "meaning": KINDS[f.kind]}
                for f in sorted(self.findings.values(), key=lambda f: f.first_position)
            ],
            "missing_guards": self.missing_guards,
            "digest_checked": self.digest_checked,
            "checkpoints_checked": self.checkpoints,
            "tree_integrated": self.tree_integrated,
        }


def parse_digest(value: str) -> tuple[int, bytes]:
    """`POSITION:HASH` (as printed by `ledger replay digest`) -> (position, hash bytes)."""
    pos, sep, hexhash = value.strip().partition(":")
    try:
        digest = (int(pos), bytes.fromhex(hexhash))
    except ValueError:
        digest = (-1, b"")
    if not sep or digest[0] < 0 or len(digest[1]) != 32:
        raise ValueError(f"a digest is POSITION:HASH (64 hex digits), not {value!r}")
    return digest


def missing_guards(store: EventStore) -> list[str]:
    if not store.is_sqlite:
        return []
    with store.read_engine.connect() as conn:
        have = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    return [g for g in GUARDS if g not in have]


# Payloads the scan remembers as checked: short ones (keepalives, hides, status changes,
# which repeat), up to this many.
_KNOWN_BYTES = 200
_KNOWN_MAX = 100_000


class Scan:
    """The checks of one pass, fed chunk by chunk. Between chunks it keeps the previous
    row's hash and position and one int per stream; the rare findings leave the hot loop."""

    def __init__(self, v: Verdict, blobs: BlobStore | None, digest: tuple[int, bytes] | None):
        self.v, self.blobs, self.digest = v, blobs, digest
        self.versions: dict[str, int] = {}
        # Payloads that passed the payload check, by (type, schema version, bytes).
        self.known: set[tuple[str, int, bytes]] = set()
        self.missing: dict[str, int] = {}  # blob -> first position naming it
        self.erased: set[str] = set()  # blobs an Erased event destroyed
        self.prev, self.expected = GENESIS_HASH, 1
        if digest is not None and digest[0] == 0:
            v.digest_checked = True
            self.digest = None
            if digest[1] != GENESIS_HASH:
                v.flag("digest", 0, "a digest at position 0 must be the genesis hash")

    def feed(self, rows: list[Row]) -> None:
        v, versions = self.v, self.versions
        first, last = rows[0][0], rows[-1][0]
        # Positions are unique and ascending, so a chunk without gaps spans exactly its length.
        if first != self.expected or last - first != len(rows) - 1:
            self._gaps(rows)
        sha, dumps, get, loads = hashlib.sha256, orjson.dumps, versions.get, orjson.loads
        blob_types = BLOB_EVENTS if self.blobs is not None else frozenset()
        shapes, fits, known = PAYLOAD_FIELDS, _fits, self.known
        prev = self.prev
        for pos, sid, ver, typ, sv, rec, payload, h in rows:
            try:
                # Each link is judged from the previous row's stored hash, so one edit flags
                # one link. This is persistence.store.chain_hash inlined (a tuple dumps like its
                # list); it must stay byte-identical (tests/replay/test_verify.py holds them
                # side by side).
                if sha(prev + dumps((pos, sid, ver, typ, sv, rec)) + payload).digest() != h:
                    v.flag("link", pos, f"{typ} of {sid} v{ver}")
                if get(sid, 0) + 1 == ver:
                    versions[sid] = ver
                else:
                    self._bad_version(pos, sid, ver)
                if (typ, sv, payload) in known:
                    continue  # the same bytes passed before (keepalives repeat a few shapes)
                data = loads(payload)
                fields = shapes.get((typ, sv))
                if type(data) is not dict or (fields is not None and not fits(data, fields)):
                    self._bad_payload(pos, typ, sv, data)
                elif typ in blob_types:
                    self._blob(pos, typ, data)
                elif len(payload) <= _KNOWN_BYTES and len(known) < _KNOWN_MAX:
                    known.add((typ, sv, payload))
            except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
                self._bad_row(pos, exc)
            finally:
                prev = h if type(h) is bytes else b""  # another type breaks the next link
        self.prev, self.expected = prev, last + 1
        v.events += len(rows)
        v.head = (last, prev)
        if self.digest is not None and last >= self.digest[0]:
            self._digest(rows)

    def finish(self) -> Verdict:
        v = self.v
        if self.digest is not None:
            v.flag(
                "digest", self.digest[0], f"the log ends at {v.head[0]}, before the digest position"
            )
        for sha, pos in self.missing.items():
            if sha not in self.erased:
                v.flag("blob", pos, f"blob {sha} is missing")
        v.streams = len(self.versions)
        return v

    def _gaps(self, rows: list[Row]) -> None:
        expected = self.expected
        for r in rows:
            if r[0] != expected:
                self.v.flag("gap", expected, f"positions {expected}..{r[0] - 1} are missing")
            expected = r[0] + 1

    def _bad_version(self, pos: int, sid: str, ver: int) -> None:
        last = self.versions.get(sid, 0)
        self.v.flag("version", pos, f"{sid}: version {ver} after {last}")
        if type(ver) is int:
            self.versions[sid] = max(last, ver)

    def _bad_row(self, pos: int, exc: Exception) -> None:
        """A row the checks cannot even read: a payload that is not JSON, or a column of a
        type no ledger writes (text where bytes belong, say)."""
        if isinstance(exc, orjson.JSONDecodeError):
            self.v.flag("payload", pos, "the payload is not JSON")
        else:
            self.v.flag("row", pos, f"a column of an unexpected type ({type(exc).__name__})")

    def _bad_payload(self, pos: int, typ: str, sv: int, data: Any) -> None:
        if type(data) is not dict:
            self.v.flag("payload", pos, f"{typ}: the payload is a JSON {type(data).__name__}")
            return
        fields = PAYLOAD_FIELDS.get((typ, sv), ())
        wrong = [name for name, ok in fields if name in data and not isinstance(data[name], ok)]
        self.v.flag("payload", pos, f"{typ}: field {', '.join(wrong) or '?'} of the wrong type")

    def _blob(self, pos: int, typ: str, data: dict[str, Any]) -> None:
        assert self.blobs is not None
        if typ == "Erased":  # its blobs were destroyed on purpose: not missing
            self.erased.update(b for b in data.get("blobs", ()) if type(b) is str)
            return
        sha = data.get("sha256")
        if sha:
            self.v.blobs += 1
            try:
                state = None if self.blobs.matches(sha) else "missing"
                if state is not None and self.blobs.exists(sha):
                    state = "changed"
            except LedgerError:  # not a blob name at all (the payload check names such a row)
                state = "not a blob name"
            if state == "missing":
                self.missing.setdefault(sha, pos)  # unless an erasure later names it
            elif state is not None:
                self.v.flag("blob", pos, f"blob {sha} is {state}")

    def _digest(self, rows: list[Row]) -> None:
        assert self.digest is not None
        at, expected_hash = self.digest
        self.digest = None  # positions ascend: no later chunk can hold it
        for r in rows:
            if r[0] == at:
                self.v.digest_checked = True
                if r[7] != expected_hash:
                    self.v.flag("digest", at, "the hash at the digest's position differs")
                return


def _fits(data: dict[str, Any], fields: Fields) -> bool:
    """Whether each field `data` holds is of a type its event class declares (a field left
    out is not judged: the fold reads it as absent)."""
    for name, accepted in fields:
        if name in data and not isinstance(data[name], accepted):
            return False
    return True


def verify(
    store: EventStore,
    blobs: BlobStore | None,
    digest: tuple[int, bytes] | None = None,
    chunk: int = CHUNK,
    saved: Sequence[witness.Saved] = (),
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """One pass over the log; memory holds one chunk, one int per stream and one hash per
    block of the tree (replay/witness.py), whose roots are checked against `saved`. The tree
    is folded by `jobs` worker processes meanwhile (None: the CPUs) when the log is large
    enough to gain from it (replay/tree_jobs.py)."""
    scan = Scan(Verdict(missing_guards=missing_guards(store)), blobs, digest)
    sizes = [s.checkpoint.size for s in saved]
    jobs = tree_jobs.default_jobs() if jobs is None else max(1, jobs)
    parts = (
        tree_jobs.TreeJobs(store, sizes, jobs) if jobs > 1 and tree_jobs.worth_it(store) else None
    )
    tree = witness.TreeScan(sizes) if parts is None else None
    try:
        until = None if parts is None else parts.plan.last_position
        for rows in read_chunks(store, chunk, until=until):
            scan.feed(rows)
            if tree is not None:
                tree.feed(rows)
            if progress is not None:
                progress(rows[-1][0])
        if progress is not None:
            progress.phase("tree and checkpoints")
        if parts is not None:
            tree = parts.result()
    finally:
        if parts is not None:
            parts.close()
    assert tree is not None
    return _judged(scan.finish(), tree, store, saved)


def _judged(
    v: Verdict, tree: witness.TreeScan, store: EventStore, saved: Sequence[witness.Saved]
) -> Verdict:
    unlike = tree.unlike_stored(store)
    v.tree_integrated = tree.integrated
    if unlike is not None:
        v.flag("tree", unlike[0] + 1, unlike[1])
    for leaf, detail in witness.judge(tree, saved):
        v.flag("checkpoint", leaf + 1, detail)
    v.checkpoints = [s.checkpoint.size for s in saved]
    return v


def render(v: Verdict) -> str:
    lines = [
        f"checked {v.events} events in {v.streams} streams, {v.blobs} blob references",
        f"head digest {v.head[0]}:{v.head[1].hex()}",
    ]
    if v.digest_checked and "digest" not in v.findings:
        lines.append("the earlier digest is a prefix of this log")
    if not v.checkpoints:
        lines.append(f"note: {witness.CANNOT_PROVE}")
    elif "checkpoint" not in v.findings:
        lines.append(f"the log extends all {len(v.checkpoints)} saved checkpoints (the largest "
                     f"of {max(v.checkpoints)} leaves)")  # fmt: skip
    if note := witness.integration_note(v.tree_integrated, v.events):
        lines.append(note)
    for g in v.missing_guards:
        lines.append(f"warning: append-only trigger {g} is missing from the database")
    if v.ok:
        lines.append("OK: the log is intact")
        return "\n".join(lines)
    lines.append("FAILED:")
    for f in sorted(v.findings.values(), key=lambda f: f.first_position):
        more = f" (+{f.count - 1} more)" if f.count > 1 else ""
        lines.append(
            f"  {f.kind:<8} first bad position {f.first_position}{more}: {f.detail}"
            f" -- {KINDS[f.kind]}"
        )
    return "\n".join(lines)
