"""`decide(cmd, aggregate, at, sink, window)`: run one command against its aggregate.

The pure decision step shared by the ledger's writer and any replay: it routes each command
to the aggregate's rule-checking method (a session's, or an execution context's), opens a new
stream for a start, and refuses commands on streams that hold no session. With a `sink`, a
session records the events it decides there as `NewEvent` rows. `at` is the recorded time;
a command's own `at` (its event time) is checked against `window` and the session's order
(domain/eventtime.py) before anything is decided.
"""

from __future__ import annotations

from domain import commands as c
from domain.context import ExecutionContext, context_stream, is_context_stream
from domain.errors import (
    ContextConflictError,
    InvalidCommandError,
    LedgerError,
    PreconditionFailedError,
    SessionExistsError,
    SessionNotFoundError,
)
from domain.events import NewEvent
from domain.eventtime import DEFAULT_WINDOW, EventTimeWindow, event_time, lapsed_expiry
from domain.session import Session

# What the writer decides on and caches: a session, or an execution context (`context:` ids).
Aggregate = Session | ExecutionContext


def decide(
    cmd: c.Command,
    agg: Aggregate | None,
    at: float,
    sink: list[NewEvent] | None = None,
    window: EventTimeWindow = DEFAULT_WINDOW,
) -> Aggregate:
    """Run one command against its aggregate (None when the stream does not exist).
    With a `sink`, a session records the events it decides there as store rows; without one
    (and always for a context), they are the library's pending event objects."""
    if not isinstance(agg, Session) or isinstance(cmd, _OPENING):
        return _open(cmd, agg, at, sink, window)
    # An existing session (the common case); no session lives in the `context:` namespace.
    state = agg.state
    if cmd.at is None and state["last_seen_at"] <= at and state["updated_at"] <= at:
        agg.event_at = None  # recorded now, after every event of the stream: the usual case
    else:
        agg.event_at = event_time(cmd.at, at, state, window)
    agg.sink = sink
    if cmd.expected_version is not None and cmd.expected_version != agg.version:
        raise PreconditionFailedError(
            f"session {cmd.session_id} is at version {agg.version}, "
            f"not the expected {cmd.expected_version}"
        )
    if type(cmd) is c.KeepAlive:  # most of a log: spared the dispatch below
        agg.keep_alive(at, cmd.visible, cmd.path)
    else:
        _on_session(cmd, agg, at)
    return agg


def _on_session(cmd: c.Command, agg: Session, at: float) -> None:
    """A command on an existing session: the aggregate's method that checks its rules."""
    match cmd:
        case c.KeepAlive():
            agg.keep_alive(at, cmd.visible, cmd.path)
        case c.Hide():
            agg.hide(at, cmd.path)
        case c.ChangeStatus():
            agg.change_status(at, cmd.status, cmd.reason, cmd.by)
        case c.UpdateDetails():
            if cmd.status is not None:
                agg.check_status_change(cmd.status)
            agg.update_details(at, cmd.changes, cmd.by)
            if cmd.status is not None:
                agg.change_status(at, cmd.status, cmd.reason, cmd.by)
        case c.UploadLog():
            agg.upload_log(at, cmd.kind, cmd.content_type, cmd.size, cmd.sha256)
        case c.AttachArtifact():
            agg.attach_artifact(
                at,
                kind=cmd.kind,
                title=cmd.title,
                url=cmd.url,
                content_type=cmd.content_type,
                size=cmd.size,
                sha256=cmd.sha256,
                by=cmd.by,
            )
        case c.RecordMetric():
            agg.record_metric(at, cmd.item, cmd.values, cmd.context)
        case c.RecordResult():
            agg.record_result(at, cmd.status, cmd.test)
        case c.Annotate():
            if not cmd.annotation_id:
                raise InvalidCommandError("annotation_id is required", field="annotation_id")
            agg.annotate(
                at,
                cmd.annotation_id,
                kind=cmd.kind,
                text=cmd.text,
                context=cmd.context,
                occurred_at=cmd.occurred_at,
                retracted=cmd.retracted,
                by=cmd.by,
            )
        case c.StopSession():
            agg.stop(at, cmd.reason, cmd.by, cmd.ended_at)
        case c.ExpireSession():
            agg.expire(at, cmd.timeout)
        case c.DeleteSession():
            agg.delete(at, cmd.reason, cmd.by)
        case c.EraseSession():
            agg.erase(at, cmd.personal_keys, cmd.by)
        case _:
            raise InvalidCommandError(f"unknown command {type(cmd).__name__}")


_OPENING = (c.RecordContext, c.StartSession)
# Commands that never meet a lapsed session: an expiry decides one itself, and a start
# opens a stream (on an existing one it is refused).
_NOT_AFTER_A_GAP = (c.ExpireSession, c.StartSession, c.RecordContext)


def lapse_if_due(
    cmd: c.Command,
    agg: Aggregate | None,
    at: float,
    sink: list[NewEvent] | None,
    timeout: float | None,
    window: EventTimeWindow = DEFAULT_WINDOW,
) -> bool:
    """Before a command whose own `at` lies more than `timeout` after its open session's
    last sign of life: decide the Expired the sweeper would have appended live in that gap
    (the command then meets an expired session). Nothing for a command without `at`, or one
    whose `at` the window or order rules refuse. True when an Expired was decided."""
    if cmd.at is None or timeout is None or not isinstance(agg, Session):
        return False
    if isinstance(cmd, _NOT_AFTER_A_GAP):
        return False
    try:
        event_time(cmd.at, at, agg.state, window)
    except LedgerError:
        return False  # the command itself is refused, with this error, and nothing else
    expired_at = lapsed_expiry(agg.state, cmd.at, timeout)
    if expired_at is None:
        return False
    agg.sink = sink
    agg.lapse(at, expired_at)
    return True


def _open(
    cmd: c.Command,
    agg: Aggregate | None,
    at: float,
    sink: list[NewEvent] | None,
    window: EventTimeWindow,
) -> Aggregate:
    """`decide` for what is not a command on an existing session: a context, a start, or a
    command on a stream that holds no session."""
    if isinstance(cmd, c.RecordContext):
        if cmd.session_id != context_stream(cmd.h):
            raise InvalidCommandError(f"a context's stream is {context_stream(cmd.h)!r}", field="h")
        if agg is None:
            return ExecutionContext.record(cmd.h, cmd.attributes, at)
        if not isinstance(agg, ExecutionContext):
            raise ContextConflictError(f"stream {cmd.session_id} is not a context", field="h")
        agg.record_again(cmd.attributes)
        return agg
    if is_context_stream(cmd.session_id):
        # The `context:` namespace belongs to contexts: no session may start or live there.
        if isinstance(cmd, c.StartSession):
            raise InvalidCommandError("session ids may not start with 'context:'", field="id")
        raise SessionNotFoundError(f"no session {cmd.session_id}")
    if isinstance(cmd, c.StartSession):
        if agg is not None:
            raise SessionExistsError(f"session {cmd.session_id} already exists", field="id")
        fields = {
            k: getattr(cmd, k)
            for k in cmd.__dataclass_fields__
            if k not in ("session_id", "idempotency_key", "expected_version")
        }
        fields["at"] = event_time(cmd.at, at, None, window)
        return Session.start(cmd.session_id, at, sink, **fields)
    raise SessionNotFoundError(f"no session {cmd.session_id}")
