"""Check a Session Ledger evidence bundle with the standard library only (json, hashlib).

    python3 verify_bundle.py session.jsonl     # exit 0 and "OK ..." when every link holds

The format is documented in replay/bundle.py (`session-ledger-bundle/1`): a header line, then
one line per event carrying the exact bytes the ledger's hash chain covers.
"""

from __future__ import annotations

import hashlib
import json
import sys

FORMAT = "session-ledger-bundle/1"
GENESIS = "0" * 64


def check(lines: list[str]) -> list[str]:
    """Every problem found (empty when the bundle verifies)."""
    if not lines:
        return ["empty bundle"]
    try:
        header = json.loads(lines[0])
    except ValueError:
        return ["line 1: not JSON"]
    if header.get("format") != FORMAT:
        return [f"line 1: not a {FORMAT} bundle"]
    sid, digest = header["session_id"], header["digest"]
    problems: list[str] = []
    prev_pos, prev_hash = 0, None
    events = lines[1:]
    if len(events) != header["events"]:
        problems.append(f"header says {header['events']} events, bundle has {len(events)}")
    for n, raw in enumerate(events, start=2):
        try:
            e = json.loads(raw)
            record, payload = bytes.fromhex(e["record_hex"]), bytes.fromhex(e["payload_hex"])
            prev, stated = bytes.fromhex(e["prev_hash"]), e["hash"]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"line {n}: unreadable ({exc})")
            continue
        at = f"line {n} (position {e.get('position')})"
        if hashlib.sha256(prev + record + payload).hexdigest() != stated:
            problems.append(f"{at}: sha256(prev_hash + record + payload) is not its hash")
        fields = [e["position"], e["stream_id"], e["version"], e["type"]]
        fields += [e["schema_version"], e["recorded_at"]]
        if json.loads(record) != fields:
            problems.append(f"{at}: the readable fields differ from the hashed record")
        if json.loads(payload) != e["payload"]:
            problems.append(f"{at}: the readable payload differs from the hashed payload")
        if e["stream_id"] != sid:
            problems.append(f"{at}: belongs to {e['stream_id']}, not {sid}")
        if e["version"] != n - 1:
            problems.append(f"{at}: version {e['version']}, expected {n - 1}")
        if e["position"] <= prev_pos or e["position"] > digest["position"]:
            problems.append(f"{at}: position out of order or past the digest")
        if e["position"] == 1 and e["prev_hash"] != GENESIS:
            problems.append(f"{at}: the first event must follow the genesis hash")
        if prev_hash is not None and e["position"] == prev_pos + 1 and e["prev_hash"] != prev_hash:
            problems.append(f"{at}: does not link to the previous line's hash")
        if e["position"] == digest["position"] and stated != digest["hash"]:
            problems.append(f"{at}: the digest position carries another hash")
        prev_pos, prev_hash = e["position"], stated
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    problems = check(lines)
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    header = json.loads(lines[0])
    d = header["digest"]
    print(
        f"OK: {header['events']} events of session {header['session_id']} verify; "
        f"ledger digest {d['position']}:{d['hash']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
