"""`ledger replay verify`: recompute the hash chain, the stream versions and the blob hashes
over the whole log in one streaming pass, and name the first bad position of each kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from domain.blobs import BlobStore
from domain.store import GENESIS_HASH, EventStore, chain_hash

BLOB_EVENTS = frozenset({"LogUploaded", "ArtifactAttached"})
GUARDS = ("events_refuse_update", "events_refuse_delete")
# What each kind of problem usually means, for the report.
KINDS = {
    "gap": "a position is missing (a row was deleted)",
    "link": "the event does not hash to its stored hash from the previous one "
    "(it or its predecessor was edited, moved, inserted or removed)",
    "version": "the stream's versions are not 1..n in position order",
    "blob": "a referenced blob is missing or no longer matches its sha256",
    "digest": "the earlier digest is not a prefix of this log",
}


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

    @property
    def ok(self) -> bool:
        return not self.findings

    def flag(self, kind: str, position: int, detail: str) -> None:
        seen = self.findings.get(kind)
        if seen is None:
            self.findings[kind] = Finding(kind, position, detail)
        else:
            seen.count += 1

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


def verify(
    store: EventStore, blobs: BlobStore | None, digest: tuple[int, bytes] | None = None
) -> Verdict:
    """One pass over the log; memory holds one chunk plus one int per stream."""
    v = Verdict(missing_guards=missing_guards(store))
    versions: dict[str, int] = {}
    prev, expected = GENESIS_HASH, 1
    if digest is not None and digest[0] == 0:
        v.digest_checked = True
        if digest[1] != GENESIS_HASH:
            v.flag("digest", 0, "a digest at position 0 must be the genesis hash")
    for e in store.iter_all():
        v.events += 1
        if e.position != expected:
            v.flag("gap", expected, f"positions {expected}..{e.position - 1} are missing")
        # Each link is judged from the previous row's stored hash, so one edit flags one link.
        link = chain_hash(
            prev,
            e.position,
            e.stream_id,
            e.version,
            e.type,
            e.schema_version,
            e.recorded_at,
            e.payload,
        )
        if link != e.hash:
            v.flag("link", e.position, f"{e.type} of {e.stream_id} v{e.version}")
        last = versions.get(e.stream_id, 0)
        if e.version != last + 1:
            v.flag("version", e.position, f"{e.stream_id}: version {e.version} after {last}")
        versions[e.stream_id] = max(last, e.version)
        if blobs is not None and e.type in BLOB_EVENTS:
            sha = e.data().get("sha256")
            if sha:
                v.blobs += 1
                if not blobs.matches(sha):
                    state = "changed" if blobs.exists(sha) else "missing"
                    v.flag("blob", e.position, f"blob {sha} is {state}")
        if digest is not None and e.position == digest[0]:
            v.digest_checked = True
            if e.hash != digest[1]:
                v.flag("digest", e.position, "the hash at the digest's position differs")
        prev, expected = e.hash, e.position + 1
        v.head = (e.position, e.hash)
    if digest is not None and not v.digest_checked:
        v.flag("digest", digest[0], f"the log ends at {v.head[0]}, before the digest position")
    v.streams = len(versions)
    return v


def render(v: Verdict) -> str:
    lines = [
        f"checked {v.events} events in {v.streams} streams, {v.blobs} blob references",
        f"head digest {v.head[0]}:{v.head[1].hex()}",
    ]
    if v.digest_checked and "digest" not in v.findings:
        lines.append("the earlier digest is a prefix of this log")
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
