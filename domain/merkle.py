"""RFC 6962 Merkle tree maths for a transparency log: hashes, roots, the append frontier,
inclusion and consistency proofs and their verifiers (RFC 9162 §2.1). Pure: no storage.

A proof is built from the Merkle Tree Hashes (MTH) of ranges of leaves, asked of a caller's
`subtree(start, end)`, so proofs never need every leaf in memory. The ranges a proof asks for
(`inclusion_ranges`, `consistency_ranges`) are all perfect subtrees (aligned, a power of two
long) except on the tree's right edge, where a range is left-aligned: its start is a multiple
of a power of two at least its length. A left-aligned range's MTH is `fold_right` of the hashes
of its `perfect_ranges`, so a store that keeps the perfect subtrees `Frontier.append` completes
answers every range a proof asks for from at most log2(n) stored nodes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

HASH_SIZE = 32
# RFC 6962 §2.1: the hash of an empty tree is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

# MTH of the leaves [start, end): what a store answers when a proof asks.
Subtree = Callable[[int, int], bytes]
# A completed perfect subtree as a store keeps it: (level, index, hash), as Node's fields.
NodeRow = tuple[int, int, bytes]


class ProofError(ValueError):
    """A proof asked for or offered outside RFC 9162's terms, or one that does not verify."""


@dataclass(frozen=True, order=True, slots=True)
class Node:
    """A perfect subtree: 2**level leaves from index * 2**level on, and their MTH."""

    level: int
    index: int
    hash: bytes

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


def leaf_hash(leaf: bytes) -> bytes:
    """SHA-256(0x00 || leaf): the prefixes keep a leaf from passing for an interior node."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """The MTH of adjacent perfect subtrees given left to right in strictly falling sizes (a
    frontier, or the `perfect_ranges` of a left-aligned range): RFC 6962 splits off the
    largest power of two first, so the smaller subtrees on the right are joined first."""
    if not hashes:
        return EMPTY_ROOT
    out = hashes[-1]
    for h in reversed(hashes[:-1]):
        out = node_hash(h, out)
    return out


def root(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 6962 §2.1), in one pass with O(log n) memory."""
    stack: list[bytes] = []
    for i, h in enumerate(hashes):
        # Leaf i closes one perfect subtree per trailing 1 bit of i (a binary counter).
        while i & 1:
            h = node_hash(stack.pop(), h)
            i >>= 1
        stack.append(h)
    return fold_right(stack)


def perfect_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) as the fewest aligned power-of-two ranges, left to right."""
    if not 0 <= start <= end:
        raise ValueError(f"not a range of leaves: [{start}, {end})")
    out: list[tuple[int, int]] = []
    while start < end:
        # The largest aligned block at `start` (any size at 0), cut to what is left.
        size = start & -start if start else 1 << ((end - start).bit_length() - 1)
        while start + size > end:
            size >>= 1
        out.append((start, start + size))
        start += size
    return out


class Frontier:
    """The compact range [0, size): the roots of the perfect subtrees covering it, one per
    set bit of size, largest (leftmost) first. Enough to append and to give the root."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Add a leaf; return the perfect subtrees it completes, the leaf itself first, so a
        store may keep the interior nodes that later proofs ask for."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf_hash)}")
        index, h, level = self._size, leaf_hash, 0
        done = [Node(0, index, h)]
        while (index >> level) & 1:
            h = node_hash(self._hashes.pop(), h)
            level += 1
            done.append(Node(level, index >> level, h))
        self._hashes.append(h)
        self._size += 1
        return done

    def extend(self, leaf_hashes: Sequence[bytes], min_level: int = 1) -> list[NodeRow]:
        """Add many leaves; return (level, index, hash) of each perfect subtree above the
        leaves that they complete at `min_level` or above, level by level. The same tree as
        `append` leaf by leaf, built a level at a time: each level's pairs are hashed in one
        comprehension, so a batch costs about one SHA-256 per leaf and little Python besides
        (a store's writer calls this once per transaction; `append` made a Node per
        completed subtree)."""
        if set(map(len, leaf_hashes)) - {HASH_SIZE}:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        done: list[NodeRow] = []

        def keep(level: int, start: int, row: list[bytes]) -> None:
            if level >= min_level:
                done.extend(zip(repeat(level), range(start, start + len(row)), row))

        self._grow(list(leaf_hashes), keep)
        return done

    def extend_level(self, leaf_hashes: list[bytes], level: int) -> list[bytes]:
        """`extend` for a verifier's pass, which keeps one level only: the hashes of the
        subtrees of `level` completed, in order. For leaf hashes this process made (unchecked
        lengths); `leaf_hashes` becomes the frontier's to change."""
        done: list[bytes] = []

        def keep(at: int, _start: int, row: list[bytes]) -> None:
            if at == level:
                done.extend(row)

        self._grow(leaf_hashes, keep)
        return done

    def _grow(self, row: list[bytes], keep: Callable[[int, int, list[bytes]], None]) -> None:
        """Add the leaves `row`, handing each level's completed subtrees to `keep`."""
        sha256, hashes = hashlib.sha256, self._hashes
        kept: list[bytes] = []  # the new frontier's hashes below the untouched ones, lowest first
        added, start, level = len(row), self._size, 0
        while row:
            if start & 1:
                # The level's last subtree so far is the new row's left sibling: the old
                # frontier's lowest hash (lower ones were taken at the levels below).
                row.insert(0, hashes.pop())
                start -= 1
            if len(row) & 1:
                kept.append(row[-1])
            pairs = zip(row[::2], row[1::2], strict=False)  # an odd last one was kept
            row = [sha256(b"\x01" + a + b).digest() for a, b in pairs]
            start >>= 1
            level += 1
            keep(level, start, row)
        hashes.extend(reversed(kept))
        self._size += added

    def root(self) -> bytes:
        return fold_right(self._hashes)

    def nodes(self) -> list[tuple[int, bytes]]:
        """(level, hash) of each subtree, largest first: what a store keeps in one row."""
        levels = [b for b in range(self._size.bit_length() - 1, -1, -1) if self._size >> b & 1]
        return list(zip(levels, self._hashes, strict=True))

    def join(self, nodes: Iterable[tuple[int, bytes]]) -> None:
        """Add the leaves right after this range whose compact range is `nodes` (a frontier's
        `nodes()` of a range that starts at this size). Each subtree must be aligned: this
        size a multiple of its width, which holds when this size is a multiple of a power of
        two at least the added range's size (how a verifier splits its pass in parts)."""
        for level, h in nodes:
            if self._size & ((1 << level) - 1) or len(h) != HASH_SIZE:
                raise ValueError(f"a subtree of level {level} does not fit at {self._size}")
            index = self._size >> level
            while index & 1:
                h = node_hash(self._hashes.pop(), h)
                index >>= 1
            self._hashes.append(h)
            self._size += 1 << level

    @classmethod
    def restore(cls, nodes: Iterable[tuple[int, bytes]]) -> Frontier:
        """The frontier `nodes()` described; the size follows from the levels."""
        out = cls()
        last = None
        for level, h in nodes:
            # Strictly falling levels are what makes the size, and so the shape, unambiguous.
            if level < 0 or (last is not None and level >= last) or len(h) != HASH_SIZE:
                raise ValueError(f"not a frontier: level {level} after {last}, {len(h)} bytes")
            out._size += 1 << level
            out._hashes.append(h)
            last = level
        return out


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs make PATH(index, D[size]) (RFC 6962 §2.1.1), leaf's sibling
    first. Each is perfect, except a range ending at `size`, which is left-aligned."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    # PATH recurses into the half holding the leaf and appends the other half's MTH after
    # the deeper path, so the ranges are found top down and given bottom up.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs make PROOF(first, D[second]) (RFC 6962 §2.1.2), deepest first.
    Each is perfect, except a range ending at `second`, which is left-aligned."""
    if not 0 < first < second:
        raise ProofError(f"no consistency proof from {first} to {second}: needs 0 < first < second")
    out: list[tuple[int, int]] = []
    lo, hi, whole = 0, second, True
    # SUBPROOF(m, D[lo:hi], b) with m = first - lo; it ends when m equals the range's size.
    while first != hi:
        k = _split(hi - lo)
        if first - lo <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            whole = False
    # The old root itself is left out only while it is the whole left edge (b = true).
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(index, D[size]): the audit path CT and tlog verifiers accept."""
    return [subtree(start, end) for start, end in inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, subtree: Subtree) -> list[bytes]:
    """PROOF(first, D[second]) for 0 < first < second."""
    return [subtree(start, end) for start, end in consistency_ranges(first, second)]


def _check_sizes(*hashes: bytes) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError(f"a hash is {HASH_SIZE} bytes, not {len(h)}")


def _shift_to_odd(fn: int, sn: int) -> tuple[int, int]:
    # A last node with no right sibling is its own parent: climb until it is a right child.
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise ProofError unless `proof` shows the leaf at `index` in the
    tree of `size` with `root`. Take (size, root) from a signed checkpoint: the proof alone
    does not bind the size."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    _check_sizes(leaf_hash, root, *proof)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof has hashes past the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _shift_to_odd(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof stops short of the root")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless `proof` shows the tree of `second` with
    `second_root` extends the tree of `first` with `first_root`. Equal sizes are refused as
    the RFC does (0 < first < second); such checkpoints need equal roots, not a proof."""
    if not 0 < first < second:
        raise ProofError(f"no consistency proof from {first} to {second}: needs 0 < first < second")
    if not proof:
        raise ProofError("the consistency proof is empty")
    _check_sizes(first_root, second_root, *proof)
    # A power-of-two old tree is a node of the new one, so the proof leaves it out.
    path = [first_root, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof has hashes past the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            fn, sn = _shift_to_odd(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof stops short of the root")
    if fr != first_root:
        raise ProofError("the consistency proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("the consistency proof does not lead to the second root")
