"""Named domain errors: every rejected command raises one of these, and nothing is appended."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger reports to a caller."""

    code = "ledger-error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidCommandError(LedgerError):
    """A command's input is malformed (names the offending field)."""

    code = "invalid-command"


class SessionNotFoundError(LedgerError):
    code = "session-not-found"


class SessionExistsError(LedgerError):
    """A start names an id that already has a stream."""

    code = "session-exists"


class SessionStoppedError(LedgerError):
    """A keepalive, hide or upload after the session ended (stopped or expired)."""

    code = "session-stopped"


class SessionDeletedError(LedgerError):
    code = "session-deleted"


class ContentErasedError(LedgerError):
    """An uploaded file that an erasure destroyed (or that is otherwise gone)."""

    code = "content-erased"


class IllegalStatusChangeError(LedgerError):
    code = "illegal-status-change"


class ConcurrencyError(LedgerError):
    """The stream moved on since the caller's expected version, even after retrying."""

    code = "concurrency-conflict"


class PreconditionFailedError(ConcurrencyError):
    """The caller's expected version (If-Match) is not the stream's: nothing is appended."""

    code = "precondition-failed"


class IdempotencyKeyReusedError(LedgerError):
    """The same Idempotency-Key was sent with a different command."""

    code = "idempotency-key-reused"


class ContextConflictError(LedgerError):
    """An execution context's h was recorded before with other attributes."""

    code = "context-conflict"


class UnauthorizedError(LedgerError):
    """No credential, or one the ledger does not know (or has revoked)."""

    code = "unauthorized"


class ForbiddenError(LedgerError):
    """A known key without the scope, or limited to projects that exclude this session."""

    code = "forbidden"


class LimitExceededError(LedgerError):
    """A request over a configured size limit (names the limit); nothing is appended."""

    code = "limit-exceeded"

    def __init__(self, message: str, *, field: str | None = None, limit: str = "") -> None:
        super().__init__(message, field=field)
        self.limit = limit


class StoreUnavailableError(LedgerError):
    """The store cannot write now (disk full, read-only, locked): retry later."""

    code = "store-unavailable"
    retry_after = 5


class TreeRangeError(LedgerError):
    """A leaf index, range or tree size outside the log's Merkle tree (names the argument)."""

    code = "tree-range"


class EventTimeOutOfWindowError(LedgerError):
    """A command's `at` lies outside the window around the ledger's clock
    (LEDGER_EVENT_TIME_PAST / _FUTURE); nothing is appended."""

    code = "event-time-out-of-window"


class EventOutOfOrderError(LedgerError):
    """A command's `at` precedes its session's latest event time; nothing is appended."""

    code = "event-out-of-order"
