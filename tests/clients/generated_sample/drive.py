"""Run inside the generated client's venv (tests/clients/test_generated_client.py): start a
session, send keepalives, hide, stop, read the detail back, try a keepalive after the stop,
and print what the typed client returned, as JSON, for the test to check."""

from __future__ import annotations

import json
import sys

from session_ledger_client import AuthenticatedClient
from session_ledger_client.api.sessions import (
    get_session_v1_sessions_session_id_get as get_session,
)
from session_ledger_client.api.sessions import (
    hide_v1_sessions_session_id_hide_post as hide,
)
from session_ledger_client.api.sessions import (
    keepalive_v1_sessions_session_id_keepalive_post as keepalive,
)
from session_ledger_client.api.sessions import (
    start_session_v1_sessions_post as start,
)
from session_ledger_client.api.sessions import (
    stop_v1_sessions_session_id_stop_post as stop,
)
from session_ledger_client.models import (
    CommandAnswer,
    HideBody,
    KeepAliveBody,
    Problem,
    SessionDetail,
    StartBody,
    StopBody,
)


def main(base_url: str, key: str) -> None:
    client = AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)
    sid = "gen-1"
    answers = [
        start.sync(client=client, body=StartBody(id=sid, name="generated", project="web")),
        keepalive.sync(sid, client=client, body=KeepAliveBody(path="/a")),
        keepalive.sync(sid, client=client, body=KeepAliveBody(path="/a")),
        hide.sync(sid, client=client, body=HideBody()),
        stop.sync(sid, client=client, body=StopBody(reason="done")),
    ]
    assert all(isinstance(a, CommandAnswer) for a in answers), answers
    late = keepalive.sync(sid, client=client, body=KeepAliveBody(path="/a"))
    assert isinstance(late, Problem), late
    detail = get_session.sync(sid, client=client)
    assert isinstance(detail, SessionDetail), detail
    ghost = get_session.sync("no-such-session", client=client)
    assert isinstance(ghost, Problem), ghost
    out = {
        "versions": [a.version for a in answers if isinstance(a, CommandAnswer)],
        "late": {"status": late.status, "type": late.type_},
        "ghost": ghost.status,
        "detail": detail.to_dict(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
