"""Content-addressed blob store: large payloads (logs, HAR, screenshots) live outside the
event as files named by their sha256, and the event carries the hash and size.

A blob's name is exactly 64 lowercase hex characters at every way in and out (`path`), so
no name that came from a request or an event can point the store at another file. Uploads
are streamed (`writer`) into a temporary file with a byte cap, never held whole in memory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path

from domain.errors import (
    ContentErasedError,
    InvalidCommandError,
    LimitExceededError,
    StoreUnavailableError,
)

_NAME = re.compile(r"[0-9a-f]{64}")


def _unavailable(err: OSError) -> Exception:
    if err.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES):
        return StoreUnavailableError(f"the blob store cannot write: {err.strerror}")
    return err


class BlobWriter:
    """One upload on its way in: `write` chunks (refused past `max_bytes`), then `commit`
    (fsync, atomic rename to its hash's name) or `abort`."""

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        store.root.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=store.root, prefix=".upload-")
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.abort()
            raise LimitExceededError(
                f"the upload is larger than {self.max_bytes} bytes", limit="max_upload_bytes"
            )
        self._hash.update(chunk)
        try:
            self._file.write(chunk)
        except OSError as err:
            self.abort()
            raise _unavailable(err) from err

    def commit(self) -> tuple[str, int]:
        digest = self._hash.hexdigest()
        target = self.store.path(digest)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, target)
        except OSError as err:
            self.abort()
            raise _unavailable(err) from err
        return digest, self.size

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        Path(self._tmp).unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the blob named `sha256` lives; refuses any other kind of name."""
        if type(sha256) is not str or not _NAME.fullmatch(sha256):
            raise InvalidCommandError("a blob name is 64 lowercase hex characters", field="sha256")
        return self.root / sha256[:2] / sha256

    def writer(self, max_bytes: int) -> BlobWriter:
        return BlobWriter(self, max_bytes)

    def put(self, data: bytes) -> tuple[str, int]:
        """Store `data` durably (fsync, atomic rename) and return (sha256, size)."""
        digest = hashlib.sha256(data).hexdigest()
        if self.path(digest).exists():
            return digest, len(data)
        w = self.writer(len(data))
        w.write(data)
        return w.commit()

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise ContentErasedError(f"the content {sha256} is no longer kept (erased)") from None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def matches(self, sha256: str) -> bool:
        """True when the file is present and still hashes to its name."""
        p = self.path(sha256)
        return p.exists() and hashlib.sha256(p.read_bytes()).hexdigest() == sha256

    def destroy(self, sha256: str) -> bool:
        """Overwrite the blob with zeros, flush, and remove it (erasure); False when it was
        not there. On copy-on-write file systems and SSDs the old blocks may survive the
        overwrite: docs/log-format.md says so."""
        p = self.path(sha256)
        try:
            size = p.stat().st_size
            with open(p, "r+b") as f:
                f.write(b"\0" * size)
                f.flush()
                os.fsync(f.fileno())
            p.unlink()
        except FileNotFoundError:
            return False
        except OSError as err:
            raise _unavailable(err) from err
        return True
