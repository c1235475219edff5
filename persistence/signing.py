"""The log's signed checkpoints (c2sp.org/tlog-checkpoint bodies in C2SP signed notes) and its
Ed25519 signing key on disk: created on first start, rotated with every retired verifier key
kept, so a checkpoint signed before a rotation still verifies.

The key file (LEDGER_LOG_KEY) holds one signer key string, mode 0600; `<key file>.retired`
beside it lists the verifier keys rotation retired, one a line. The key's name is the log's
origin: fixed when the key is created (LEDGER_LOG_ORIGIN, else `<host name>/session-ledger`).
Nothing here logs, and no message carries the key file's content.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from domain.merkle import HASH_SIZE
from persistence.note import (
    NoteError,
    Signer,
    Verifier,
    Verifiers,
    open_note,
    sign_note,
    valid_key_name,
)

ORIGIN_SUFFIX = "/session-ledger"
MAX_TREE_SIZE = 2**64 - 1
# Decimal without leading zeroes, ASCII digits only (str.isdigit takes other scripts' digits).
# At most 20 digits (2**64-1 has 20): int() of thousands of digits raises, or takes long.
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class CheckpointError(ValueError):
    """A checkpoint body that breaks c2sp.org/tlog-checkpoint, or one of another log."""


class LogKeyError(ValueError):
    """The key file cannot be used: unreadable, not a signer key, or named another origin."""


def _text_line(line: str) -> bool:
    return bool(line) and not any(ch < " " for ch in line)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's origin, its tree size and the RFC 6962 root hash at that size."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _text_line(self.origin):
            raise CheckpointError("a checkpoint origin is one non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError("a checkpoint tree size is 0 to 2**64-1")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"a checkpoint root hash is {HASH_SIZE} bytes")
        if not all(_text_line(line) for line in self.extensions):
            raise CheckpointError("a checkpoint extension is one non-empty line")

    def body(self) -> str:
        """The note text: origin, tree size, base64 root hash, extension lines, each + newline."""
        lines = (self.origin, str(self.size), base64.b64encode(self.root_hash).decode())
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from a note's text; only the canonical spelling of each line is taken,
        so one tree head has one body."""
        lines = text[:-1].split("\n") if text.endswith("\n") else []
        if len(lines) < 3:
            raise CheckpointError("a checkpoint is at least three lines, each ending in newline")
        origin, size, root, *extensions = lines
        if not _TREE_SIZE.fullmatch(size):
            raise CheckpointError("a checkpoint tree size is decimal without leading zeroes")
        try:
            root_hash = base64.b64decode(root.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise CheckpointError("a checkpoint root hash is standard base64") from None
        if base64.b64encode(root_hash).decode() != root:
            raise CheckpointError("a checkpoint root hash is canonical standard base64")
        return cls(origin, int(size), root_hash, tuple(extensions))


def open_checkpoint(
    note: str | bytes, verifier_keys: Iterable[str | Verifier], origin: str | None = None
) -> Checkpoint:
    """The checkpoint of a signed note once a known key named after its origin has signed it
    (and the origin is `origin`, if given); raises NoteError or CheckpointError otherwise."""
    opened = open_note(note, Verifiers(verifier_keys))
    checkpoint = Checkpoint.parse(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"a checkpoint of another log: {checkpoint.origin!r}")
    # A witness's cosignature verifies too, but only the log's own key vouches for its head.
    if not any(sig.name == checkpoint.origin for sig in opened.signatures):
        raise CheckpointError("no known key named after the checkpoint's origin signed it")
    return checkpoint


@dataclass(frozen=True, slots=True)
class LogKeys:
    """The log's current signer and the verifier keys it retired, newest first."""

    signer: Signer
    retired: tuple[Verifier, ...] = ()

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def verifier_key(self) -> str:
        """The current verifier key string (`GET /v1/log/key`)."""
        return self.signer.verifier.key

    @property
    def verifier_keys(self) -> tuple[str, ...]:
        """Every verifier key this log has signed with: the current one first."""
        current = self.signer.verifier
        return (current.key, *(v.key for v in self.retired if v != current))

    def sign_checkpoint(self, size: int, root_hash: bytes) -> str:
        """The signed checkpoint note of the tree of `size` leaves whose root is `root_hash`."""
        return sign_note(Checkpoint(self.origin, size, root_hash).body(), [self.signer])

    def open_checkpoint(self, note: str | bytes) -> Checkpoint:
        """A checkpoint this log signed, with its current key or a retired one (under the
        origin that key was named after, should a rotation have renamed the log)."""
        return open_checkpoint(note, (self.signer.verifier, *self.retired))


def default_origin() -> str:
    """`<host name>/session-ledger`: the name a new key gets when LEDGER_LOG_ORIGIN is unset."""
    name = (socket.gethostname().strip().lower() or "localhost") + ORIGIN_SUFFIX
    return name if valid_key_name(name) else "localhost" + ORIGIN_SUFFIX


def retired_path(path: Path) -> Path:
    return path.with_name(path.name + ".retired")


def load_or_create(path: Path, name: str | None = None) -> LogKeys:
    """The log's keys from `path`, created there (0600, atomically) if it has none yet.

    `name` (LEDGER_LOG_ORIGIN) names a new key; an existing key named otherwise is refused
    rather than silently signing under a different origin. None: the key's own name.
    """
    if name is not None and not valid_key_name(name):
        raise LogKeyError("a log origin is non-empty, without spaces or '+'")
    signer = _read_signer(path)
    if signer is None:
        signer = _create(path, name or default_origin())
    if name is not None and signer.name != name:
        raise LogKeyError(
            f"the log key {path} is named {signer.name!r}, not {name!r}: "
            "rotate the key to change the log's origin"
        )
    return LogKeys(signer, _read_retired(retired_path(path)))


def rotate(path: Path, name: str | None = None) -> LogKeys:
    """A new signing key at `path`, the current one's verifier key kept in the retired list.
    `name` renames the log (a new origin); None keeps the current name."""
    if name is not None and not valid_key_name(name):
        raise LogKeyError("a log origin is non-empty, without spaces or '+'")
    with _locked(path):
        current = _read_signer(path)
        if current is None:
            return load_or_create(path, name)
        fresh = Signer.generate(name or current.name)
        # Retire first: a crash before the swap leaves the old key both current and retired,
        # never a key that signed something yet is known nowhere.
        _append_line(retired_path(path), current.verifier.key)
        os.replace(_write_private(path, fresh.secret_key()), path)
        _fsync_dir(path.parent)
        return LogKeys(fresh, _read_retired(retired_path(path)))


class LogKeyFile:
    """The key as a long-running server uses it: loaded (or created) on first use, and loaded
    again after a rotation replaced the file, so the server signs with the current key."""

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.name = name
        self._loaded: tuple[tuple[int, int, int], LogKeys] | None = None

    def keys(self) -> LogKeys:
        stamp = _stamp(self.path)
        loaded = self._loaded
        # A key file deleted under a running server does not make it sign with a new key.
        if loaded is not None and stamp in (None, loaded[0]):
            return loaded[1]
        keys = load_or_create(self.path, self.name)
        # The stamp read before loading: a rotation in between shows as a change next time.
        self._loaded = (stamp or _stamp(self.path) or (0, 0, 0), keys)
        return keys


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_signer(path: Path) -> Signer | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise LogKeyError(f"cannot read the log key {path}: {type(err).__name__}") from None
    try:
        return Signer.parse(text.strip())
    except NoteError:
        # Not chained: the parse error is about the file's content, which stays out of logs.
        raise LogKeyError(f"the log key {path} does not hold a signer key") from None


def _read_retired(path: Path) -> tuple[Verifier, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return ()
    found: dict[str, Verifier] = {}
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                found.setdefault(line.strip(), Verifier.parse(line.strip()))
            except NoteError:
                raise LogKeyError(f"{path} line {number} is not a verifier key") from None
    return tuple(reversed(found.values()))


def _create(path: Path, name: str) -> Signer:
    signer = Signer.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_private(path, signer.secret_key())
    try:
        # A hard link publishes the complete file or fails if one exists: two processes
        # starting at once end up with one key, never a half-written one or two.
        os.link(tmp, path)
    except FileExistsError:
        existing = _read_signer(path)
        if existing is None:
            raise LogKeyError(f"the log key {path} vanished while being created") from None
        return existing
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return signer


def _write_private(path: Path, secret: str) -> Path:
    """A new owner-only file beside `path` holding `secret`, flushed to disk."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask says
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two rotations at once would each retire the same key and one new key would be lost.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
