"""Check a Session Ledger evidence bundle, trusting only the log's public key.

    python3 verify_bundle.py session.jsonl VERIFIER_KEY   # exit 0 and "OK ..." when it holds

VERIFIER_KEY is the `name+hash+key` line of `GET /v1/log/key` (or `ledger log-key show`),
obtained once by another channel: the key inside the bundle is not trusted. The format is
`session-ledger-bundle/2` (replay/bundle.py); the leaf, tree, note and proof formats are
docs/log-format.md's. Standard library plus `cryptography`; no code shared with the server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "session-ledger-bundle/2"
READABLE = ("position", "stream_id", "version", "type", "recorded_at", "payload")


def h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def open_checkpoint(note: str, verifier: str) -> tuple[int, bytes]:
    """(tree size, root) of a checkpoint signed by `verifier`; ValueError otherwise."""
    name, key_hash, key = verifier.strip().split("+", 2)
    raw = base64.b64decode(key)
    if raw[:1] != b"\x01" or h(name.encode(), b"\n", raw)[:4].hex() != key_hash:
        raise ValueError("the verifier key is malformed")
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("the checkpoint is not a signed note")
    text += "\n"
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != name:
            continue
        sig = base64.b64decode(parts[2])
        if sig[:4].hex() != key_hash:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], text.encode())
        except InvalidSignature:
            raise ValueError("the checkpoint's signature does not verify") from None
        origin, size, root = text.splitlines()[:3]
        if origin != name:
            raise ValueError(f"the checkpoint is of {origin}, not of {name}")
        return int(size), base64.b64decode(root)
    raise ValueError(f"the checkpoint carries no signature by {name}")


def included(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: whether `proof` puts `leaf` at `index` in the tree with `root`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, h(b"\x00", leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = h(b"\x01", p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = h(b"\x01", r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def canonical(value: object) -> bytes:
    """The JSON a sealed value was committed to (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def undisclosed(payload: dict, disclosed: list[dict]) -> list[str]:
    """Problems with the disclosed values: each must open the commitment at its slot,
    SHA-256(salt || canonical JSON), as docs/log-format.md defines sealed values."""
    problems = []
    for d in disclosed:
        try:
            sealed = payload
            for key in d["slot"]:
                sealed = sealed[key]
            salt = base64.b64decode(d["salt"], validate=True)
            ok = h(salt, canonical(d["value"])).hex() == sealed["$sealed"]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(f"the value disclosed at {d.get('slot')} does not open its commitment")
    return problems


def check(lines: list[str], verifier: str) -> list[str]:
    """Every problem found (empty when the bundle verifies)."""
    try:
        header = json.loads(lines[0])
        if header.get("format") != FORMAT:
            return [f"line 1: not a {FORMAT} bundle"]
        size, root = open_checkpoint(header["checkpoint"], verifier)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return [f"line 1: {exc}"]
    sid, problems, last = header["session_id"], [], -1
    events = lines[1:]
    if len(events) != header["events"]:
        problems.append(f"header says {header['events']} events, bundle has {len(events)}")
    for n, raw in enumerate(events, start=2):
        try:
            e = json.loads(raw)
            leaf = base64.b64decode(e["leaf"], validate=True)
            proof = [base64.b64decode(p, validate=True) for p in e["proof"]]
            fmt, *fields = json.loads(leaf)
            index = e["leaf_index"]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"line {n}: unreadable ({exc})")
            continue
        position, stream, version, type_, _schema, at, payload = fields
        at_line = f"line {n} (leaf {index})"
        if not included(index, size, leaf, proof, root):
            problems.append(f"{at_line}: the leaf is not in the signed tree")
        if fmt != 1 or position != index + 1:
            problems.append(f"{at_line}: not a format 1 leaf of position {index + 1}")
        if [position, stream, version, type_, at, payload] != [e.get(k) for k in READABLE]:
            problems.append(f"{at_line}: the readable fields differ from the leaf")
        problems += [f"{at_line}: {p}" for p in undisclosed(payload, e.get("disclosed", []))]
        if stream != sid:
            problems.append(f"{at_line}: belongs to {stream}, not {sid}")
        if version != n - 1:
            problems.append(f"{at_line}: version {version}, expected {n - 1}")
        if index <= last:
            problems.append(f"{at_line}: out of log order")
        last = index
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    problems = check(lines, argv[2]) if lines else ["empty bundle"]
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    header = json.loads(lines[0])
    size = header["checkpoint"].splitlines()[1]
    print(
        f"OK: {header['events']} events of session {header['session_id']} are leaves of the "
        f"log's signed tree of {size} leaves"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
