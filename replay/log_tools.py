"""The handlers of the transparency-log tools: `ledger replay checkpoint` (sign the newest
tree; keep it in a witness folder), `ledger replay prove SESSION` (a session's leaves with
their inclusion proofs and the checkpoint they lead to), and the verifier keys that
`ledger replay verify --checkpoint` checks saved checkpoints with."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

import orjson

from persistence.settings import Settings
from persistence.signing import Checkpoint, LogKeyError, LogKeys, load_or_create
from persistence.store import EventStore
from replay import witness
from replay.source import ReplayError, store_open


def log_keys(settings: Settings) -> LogKeys:
    """The log's signing key, which the server made on its first start (never made here: a
    tool run as another user must not leave a key the server cannot read)."""
    path = settings.log_key
    if not path.exists():
        raise ReplayError(
            f"no log signing key at {path}: the server makes it on its first start "
            "(set LEDGER_LOG_KEY to where it is)"
        )
    try:
        return load_or_create(path, settings.log_origin or None)
    except (LogKeyError, OSError) as exc:
        raise ReplayError(f"the log signing key at {path} cannot be used: {exc}") from exc


def verifier_keys(args: argparse.Namespace, settings: Settings) -> tuple[str, ...]:
    """The keys saved checkpoints must be signed with: `--key` (an auditor's own copy),
    else the log's current and retired keys."""
    given: list[str] = args.key or []
    return tuple(given) if given else log_keys(settings).verifier_keys


def signed_latest(store: EventStore, keys: LogKeys) -> tuple[str, Checkpoint]:
    size, root = store.tree.latest()
    return keys.sign_checkpoint(size, root), Checkpoint(keys.origin, size, root)


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    keys = log_keys(settings)
    with store_open(settings) as store:
        note, checkpoint = signed_latest(store, keys)
        saved = witness.save(Path(args.save), note, checkpoint, keys, store) if args.save else None
    print(note, end="")
    if saved is not None:
        print(f"saved to {saved}", file=sys.stderr)
    return 0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def cmd_prove(args: argparse.Namespace, settings: Settings) -> int:
    keys = log_keys(settings)
    with store_open(settings) as store:
        events = store.load_stream(args.id)
        if not events:
            raise ReplayError(f"no session {args.id}")
        note, checkpoint = signed_latest(store, keys)
        leaves: list[dict[str, Any]] = []
        for e in events:
            index = e.position - 1
            proof = store.tree.inclusion_proof(index, checkpoint.size)
            leaf = store.tree.leaves(index, index + 1)[0]
            leaves.append(
                {"leaf_index": index, "leaf": _b64(leaf), "proof": list(map(_b64, proof))}
            )
    doc = {
        "session_id": args.id,
        "checkpoint": note,
        "verifier_key": keys.verifier_key,
        "leaves": leaves,
    }
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
