"""The transparency log checked from the events themselves: `ledger replay verify` folds every
row's leaf into a Merkle tree of its own (never trusting the stored tree an insider could
rewrite), compares it with the stored tree block by block, and checks each saved checkpoint's
root at its size; `ledger replay checkpoint` signs the newest tree and keeps a history of
checkpoints (a witness's) in a folder, refusing one that does not extend the last it kept.

A verify pass without a saved checkpoint proves the log agrees with itself, not that it is
the log anyone saw before: an insider who rewrote every row and re-hashed the chain and the
tree would pass. A checkpoint signed and kept outside the server is what catches that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from domain import merkle
from domain.errors import TreeRangeError
from domain.merkle import Frontier
from persistence import store as store_module
from persistence.note import NoteError
from persistence.signing import Checkpoint, CheckpointError, LogKeys, open_checkpoint
from persistence.store import EventStore
from persistence.tree import STORED_LEVEL, TreeGapError, leaf_hashes_of
from replay.source import ReplayError

SUFFIX = ".checkpoint"
CANNOT_PROVE = (
    "no saved checkpoint given: this shows the log agrees with itself, not that it is the "
    "log seen before (an insider who rewrote every row and re-hashed them would pass); keep "
    "checkpoints with `ledger replay checkpoint --save DIR` and verify with --checkpoint DIR"
)


@dataclass(frozen=True)
class Saved:
    """A checkpoint read from a file, its signature checked."""

    path: Path
    checkpoint: Checkpoint


def checkpoint_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.name.endswith(SUFFIX))
    if path.is_file():
        return [path]
    raise ReplayError(f"no checkpoint file or folder at {path}")


def load_saved(path: Path, verifier_keys: Sequence[str]) -> list[Saved]:
    """The checkpoints at `path` (a file, or a folder of *.checkpoint), smallest first; a file
    whose signature does not verify under `verifier_keys` is an error, not a finding."""
    out = []
    for file in checkpoint_files(path):
        try:
            out.append(Saved(file, open_checkpoint(file.read_bytes(), verifier_keys)))
        except (NoteError, CheckpointError, UnicodeDecodeError) as exc:
            raise ReplayError(f"{file}: not a checkpoint signed by the log's key: {exc}") from exc
    return sorted(out, key=lambda s: s.checkpoint.size)


class TreeScan:
    """The leaves of one verify pass folded into a tree: the root at each size asked for and
    the hash of every block of 2**STORED_LEVEL leaves (to compare with the stored tree)."""

    def __init__(self, sizes: Iterable[int]) -> None:
        self.frontier = Frontier()
        self.wanted = sorted(set(sizes))
        # The compact range at each size asked for: its root, or joined after another
        # range's when the pass was split in parts (replay/tree_jobs.py).
        self.cuts: dict[int, list[tuple[int, bytes]]] = {}
        self.blocks: list[bytes] = []
        self.integrated = 0  # leaves the stored tree's nodes cover (`unlike_stored`)

    def feed(self, rows: Sequence[Sequence[object]]) -> None:
        hashes = leaf_hashes_of(rows)  # verify's rows, the chain hash last
        while hashes:
            size = self.frontier.size
            cut = next((w - size for w in self.wanted if size < w <= size + len(hashes)), None)
            part, hashes = (hashes, []) if cut is None else (hashes[:cut], hashes[cut:])
            self.blocks += self.frontier.extend_level(part, STORED_LEVEL)
            if cut is not None:
                self.cuts[self.frontier.size] = self.frontier.nodes()

    @property
    def roots(self) -> dict[int, bytes]:
        """The root at each size asked for that the pass reached."""
        return {size: Frontier.restore(nodes).root() for size, nodes in self.cuts.items()}

    @property
    def size(self) -> int:
        return self.frontier.size

    def unlike_stored(self, store: EventStore) -> tuple[int, str] | None:
        """(first leaf, what) where the stored tree disagrees with the events: the first
        block whose stored hash differs (the events were changed without the tree, or the
        tree without the events), else the root (nodes above the blocks were changed)."""
        stored = stored_blocks(store, len(self.blocks))
        if stored is None:
            return 0, "the database holds no Merkle tree (open it once with `ledger serve`)"
        # Blocks past the last stored one are not integrated yet (persistence/tree.py): the
        # root below covers them, recomputed from the events. Below it, none may be missing.
        self.integrated = min(self.size, (max(stored, default=-1) + 1) << STORED_LEVEL)
        if self.size - self.integrated > 2 * store_module.TREE_BACKSTOP:
            # The writer keeps the lag within TREE_BACKSTOP (and a commit group): far more
            # missing means stored nodes were deleted.
            return self.integrated, (
                f"the stored tree covers {self.integrated} of {self.size} leaves, more behind "
                "than the writer ever lets it fall: its nodes were deleted (or no `ledger "
                "serve` or `ledger migrate` has opened the log since an upgrade)"
            )
        for i, h in enumerate(self.blocks[: max(stored, default=-1) + 1]):
            if stored.get(i) != h:
                first = i << STORED_LEVEL
                return (
                    first,
                    f"leaves [{first}, {first + (1 << STORED_LEVEL)}) do not hash "
                    "to the stored tree's node",
                )
        try:
            root = store.tree.root(self.size) if self.size else None
        except (TreeRangeError, TreeGapError) as exc:
            return 0, f"the stored tree cannot be read ({exc})"
        if root is not None and root != self.frontier.root():
            return 0, f"the stored tree's root of {self.size} leaves is not the events' root"
        return None


def integration_note(integrated: int, events: int) -> str | None:
    """What verify says when the stored tree does not cover the whole log yet."""
    if integrated >= events:
        return None
    return (
        f"note: the stored tree covers {integrated} events; the last {events - integrated} "
        "(not integrated yet) were checked against the root recomputed from them"
    )


def stored_blocks(store: EventStore, count: int) -> dict[int, bytes] | None:
    """The stored tree's hashes of the first `count` blocks, by block index; None when the
    database has no tree at all (a log no server of this version has opened yet)."""
    sql = text("SELECT idx, hash FROM log_nodes WHERE level = :level AND idx < :n")
    try:
        with store.tree.nodes.connect() as conn:
            rows = conn.execute(sql, {"level": STORED_LEVEL, "n": count})
            return {int(i): bytes(h) for i, h in rows}
    except DBAPIError:
        return None


def judge(scan: TreeScan, saved: Sequence[Saved]) -> list[tuple[int, str]]:
    """(first bad leaf, what is wrong) for each saved checkpoint the log does not extend,
    smallest first. The bad leaf lies between the largest checkpoint that still holds and
    the first that does not: that is as close as roots alone can name it."""
    out: list[tuple[int, str]] = []
    good = 0
    for s in saved:
        cp = s.checkpoint
        if cp.size > scan.size:
            out.append((scan.size, f"{s.path.name}: the log has {scan.size} leaves, fewer than "
                        f"the {cp.size} this checkpoint signed (truncated)"))  # fmt: skip
        elif scan.roots.get(cp.size, merkle.EMPTY_ROOT) != cp.root_hash:
            out.append((good, f"{s.path.name}: the first {cp.size} leaves no longer make its "
                        f"root; a leaf in [{good}, {cp.size}) was changed"))  # fmt: skip
        else:
            good = cp.size
    return out


def save(folder: Path, note: str, checkpoint: Checkpoint, keys: LogKeys, store: EventStore) -> Path:
    """Keep `note` in `folder` as <size>.checkpoint after proving, with the store's consistency
    proof, that its tree extends the largest checkpoint the folder holds."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = load_saved(folder, keys.verifier_keys) if any(folder.iterdir()) else []
    if kept:
        last = kept[-1].checkpoint
        if last.size > checkpoint.size:
            raise ReplayError(f"the log has {checkpoint.size} leaves, fewer than the {last.size} "
                              f"of {kept[-1].path.name}: it was truncated")  # fmt: skip
        proof = store.tree.consistency_proof(last.size, checkpoint.size) if last.size else []
        try:
            if last.size:
                merkle.verify_consistency(
                    last.size, checkpoint.size, last.root_hash, checkpoint.root_hash, proof
                )
        except merkle.ProofError as exc:
            raise ReplayError(
                f"the log does not extend {kept[-1].path.name} ({exc}): not saved"
            ) from exc
    path = folder / f"{checkpoint.size:020d}{SUFFIX}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(note)
    tmp.replace(path)
    return path
