"""The handlers of the transparency-log tools: `ledger replay checkpoint` (sign the newest
tree; keep it in a witness folder), `ledger replay prove SESSION` and `bundle` (a session's
leaves with their inclusion proofs and the checkpoint they lead to), and the verifier keys
that `ledger replay verify --checkpoint` checks saved checkpoints with."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from persistence.settings import Settings
from persistence.signing import Checkpoint, LogKeyError, LogKeys, load_or_create
from persistence.store import EventStore
from replay import bundle, witness
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


def cmd_prove(args: argparse.Namespace, settings: Settings) -> int:
    """The session's bundle (replay/bundle.py) on stdout: its leaves, their inclusion proofs
    and the signed checkpoint they lead to."""
    keys = log_keys(settings)
    with store_open(settings) as store:
        bundle.write_bundle(store, keys, args.id, sys.stdout.buffer)
    return 0


def cmd_bundle(args: argparse.Namespace, settings: Settings) -> int:
    keys = log_keys(settings)
    with store_open(settings) as store, open(args.out, "wb") as f:
        n = bundle.write_bundle(store, keys, args.id, f)
    print(
        f"wrote {n} events of {args.id} to {args.out}; check with "
        'examples/verify_bundle.py FILE "$(ledger log-key show | head -1)"'
    )
    return 0
