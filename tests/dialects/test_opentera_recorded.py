"""A recorded exchange with OpenTera, replayed against the dialect.

No OpenTera server can run here, so each exchange below is a request and the answer the real
server gives it, transcribed from its code: github.com/introlab/opentera at b0fe8a24
(teraserver/python/..., the files and lines each one cites), and from its own API tests
(teraserver/python/tests/modules/FlaskModule/API/...). Ids the server would make are
placeholders ({run}: the number of the seeded session "run"); the answer is checked for
what the server's code decides: the status, the shape (a list or one object) and the fields
named. Callers: `user` and `service` are an unbound key (OpenTera's user and service
tokens), `device` a key bound to device 5, `participant` a key bound to participant 7.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.bootstrap import Container
from domain import commands as c

BASE = "/compat/opentera/api"
SRV = "teraserver/python/modules/FlaskModule/API"
MODEL = "teraserver/python/opentera/db/models/TeraSession.py"
Check = Callable[[Any, dict[str, int]], bool]


@dataclass(frozen=True)
class Exchange:
    cite: str  # where the server's answer is decided
    who: str  # user | service | device | participant (the caller's key)
    method: str
    path: str
    status: int
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    raw: bytes | None = None  # a body sent as is (not JSON)
    check: Check | None = None  # what the answer's body must show
    appends: bool = True  # False: the log must not grow


def one(pred: Callable[[dict[str, Any]], bool]) -> Check:
    """The answer is one session object (not a list) for which `pred` holds."""
    return lambda body, ids: isinstance(body, dict) and pred(body)


def listed(pred: Callable[[dict[str, Any]], bool]) -> Check:
    """The answer is a list of exactly one session for which `pred` holds."""
    return lambda body, ids: isinstance(body, list) and len(body) == 1 and pred(body[0])


def names(*wanted: str) -> Check:
    """The answer lists exactly the seeded sessions `wanted` (their numbers), newest first."""
    return lambda body, ids: [s["id_session"] for s in body] == [ids[w] for w in wanted]


def uuids(members: list[dict[str, Any]], key: str) -> list[str]:
    return sorted(m[key] for m in members)


NEW = {"id_session": 0, "session_name": "TEST", "id_session_type": 3,
       "session_start_datetime": "2023-11-14T22:13:20+00:00"}  # fmt: skip
OWN_NEW = {**NEW, "session_participants": ["p-uuid"], "session_status": 0}

EXCHANGES: dict[str, Exchange] = {
    # -- what each POST answers ------------------------------------------------------------
    "user POST answers [session]": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.226",
        "user",
        "POST",
        "/user/sessions",
        200,
        body={"session": {**NEW, "session_users_ids": [1]}},
        check=listed(lambda s: s["id_session"] > 0 and s["session_users"][0]["id_user"] == 1),
    ),
    "service POST answers [session]": Exchange(
        f"{SRV}/service/ServiceQuerySessions.py l.268",
        "service",
        "POST",
        "/service/sessions",
        200,
        body={"session": NEW},
        check=listed(lambda s: s["id_session"] > 0),
    ),
    "device POST answers the session object, the device its creator": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.113, l.194",
        "device",
        "POST",
        "/device/sessions",
        200,
        body={"session": {**OWN_NEW, "id_creator_device": 9}},
        check=one(lambda s: s["id_session"] > 0 and s["id_creator_device"] == 5),
    ),
    "participant POST answers the session object, the participant its creator": Exchange(
        f"{SRV}/participant/ParticipantQuerySessions.py l.140, l.220",
        "participant",
        "POST",
        "/participant/sessions",
        200,
        body={"session": {**OWN_NEW, "id_creator_user": 1}},
        check=one(lambda s: s["id_creator_participant"] == 7 and s["id_creator_user"] is None),
    ),
    # -- the service API's members by uuid -------------------------------------------------
    "service POST keeps session_*_uuids as members": Exchange(
        f"{SRV}/service/ServiceQuerySessions.py l.162-185, l.235-266",
        "service",
        "POST",
        "/service/sessions",
        200,
        body={
            "session": {
                **NEW,
                "session_participants_uuids": ["pa", "pb"],
                "session_users_uuids": ["ua"],
                "session_devices_uuids": ["da"],
            }
        },
        check=listed(
            lambda s: (
                uuids(s["session_participants"], "participant_uuid") == ["pa", "pb"]
                and uuids(s["session_users"], "user_uuid") == ["ua"]
                and uuids(s["session_devices"], "device_uuid") == ["da"]
            )
        ),
    ),
    "service POST update replaces participants, adds users": Exchange(
        f"{SRV}/service/ServiceQuerySessions.py l.235-255",
        "service",
        "POST",
        "/service/sessions",
        200,
        body={
            "session": {
                "id_session": "{done}",
                "session_participants_uuids": ["pz"],
                "session_users_uuids": ["uz"],
            }
        },
        check=listed(
            lambda s: (
                uuids(s["session_participants"], "participant_uuid") == ["pz"]
                and uuids(s["session_users"], "user_uuid") == ["ux", "uz"]
            )
        ),
    ),
    # -- a device's rules ------------------------------------------------------------------
    "device GET sessions is 403": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.69-74",
        "device",
        "GET",
        "/device/sessions",
        403,
        params={"id_session": "{done}"},
    ),
    "device DELETE session is 403": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.196-201",
        "device",
        "DELETE",
        "/device/sessions",
        403,
        params={"id": "{done}"},
        appends=False,
    ),
    "device GET session events is 403": Exchange(
        f"{SRV}/device/DeviceQuerySessionEvents.py l.28-33",
        "device",
        "GET",
        "/device/sessions/events",
        403,
        params={"id_session": "{done}"},
    ),
    "device POST update of a session it did not create is 403": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.139-142",
        "device",
        "POST",
        "/device/sessions",
        403,
        body={"session": {"id_session": "{run}", "id_session_type": 3}},
        appends=False,
    ),
    "device POST update of its own session answers it": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.145-155, l.194",
        "device",
        "POST",
        "/device/sessions",
        200,
        body={"session": {"id_session": "{done}", "id_session_type": 3, "session_name": "x"}},
        check=one(lambda s: s["session_name"] == "x" and s["id_creator_device"] == 5),
    ),
    # -- a participant's rules -------------------------------------------------------------
    "participant GET lists its own sessions only": Exchange(
        f"{SRV}/participant/ParticipantQuerySessions.py l.97-100; {MODEL} l.291-311",
        "participant",
        "GET",
        "/participant/sessions",
        200,
        check=names("mine", "member"),
    ),
    "participant GET of another's session is 200 []": Exchange(
        f"{SRV}/participant/ParticipantQuerySessions.py l.91-100",
        "participant",
        "GET",
        "/participant/sessions",
        200,
        params={"id_session": "{run}"},
        check=lambda body, ids: body == [],
    ),
    "participant POST update of a session it did not create is 403": Exchange(
        f"{SRV}/participant/ParticipantQuerySessions.py l.166-169",
        "participant",
        "POST",
        "/participant/sessions",
        403,
        body={"session": {"id_session": "{member}", "id_session_type": 3}},
        appends=False,
    ),
    "user POST update of an unknown session is 403": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.141-145",
        "user",
        "POST",
        "/user/sessions",
        403,
        body={"session": {"id_session": 999999, "session_name": "x"}},
        appends=False,
    ),
    "device POST update of an unknown session is 403": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.139-142",
        "device",
        "POST",
        "/device/sessions",
        403,
        body={"session": {"id_session": 999999, "id_session_type": 3}},
        appends=False,
    ),
    "user POST of an event of an unknown session is 403": Exchange(
        f"{SRV}/user/UserQuerySessionEvents.py l.91-94",
        "user",
        "POST",
        "/user/sessions/events",
        403,
        body={"session_event": {"id_session_event": 0, "id_session": 999999}},
        appends=False,
    ),
    "device POST of an event of a session it is not in is 403": Exchange(
        f"{SRV}/device/DeviceQuerySessionEvents.py l.63-66",
        "device",
        "POST",
        "/device/sessions/events",
        403,
        body={"session_event": {"id_session_event": 0, "id_session": "{run}"}},
        appends=False,
    ),
    "device POST of an event of its own session answers [event]": Exchange(
        f"{SRV}/device/DeviceQuerySessionEvents.py l.80-98",
        "device",
        "POST",
        "/device/sessions/events",
        200,
        body={
            "session_event": {
                "id_session_event": 0,
                "id_session": "{done}",
                "session_event_text": "hello",
            }
        },
        check=lambda body, ids: body[0]["session_event_text"] == "hello",
    ),
    # -- delete ----------------------------------------------------------------------------
    "user DELETE of an in-progress session is 403": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.265-267",
        "user",
        "DELETE",
        "/user/sessions",
        403,
        params={"id": "{run}"},
        appends=False,
    ),
    "user DELETE of a completed session is an empty 200": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.269-280",
        "user",
        "DELETE",
        "/user/sessions",
        200,
        params={"id": "{done}"},
        check=lambda body, ids: body == b"",
    ),
    # -- session_duration and with_session_type --------------------------------------------
    "session_duration of a running session is the stored 0, not time so far": Exchange(
        f"{MODEL} l.34 (Integer, default 0); l.58-120",
        "user",
        "GET",
        "/user/sessions",
        200,
        params={"id_session": "{run}"},
        check=listed(lambda s: s["session_duration"] == 0),
    ),
    "a posted session_duration is kept as posted": Exchange(
        f"{MODEL} l.466-472; {SRV}/user/UserQuerySessions.py l.173-176",
        "user",
        "POST",
        "/user/sessions",
        200,
        body={"session": {"id_session": "{run}", "session_duration": 42}},
        check=listed(lambda s: s["session_duration"] == 42 and s["session_status"] == 1),
    ),
    "user GET with_session_type adds session_type_name and _color": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.93-95",
        "user",
        "GET",
        "/user/sessions",
        200,
        params={"id_session": "{run}", "with_session_type": "true"},
        check=listed(
            lambda s: (
                s["session_type_name"] == "3"
                and "session_type_color" in s
                and "session_type" not in s
            )
        ),
    ),
    "service GET with_session_type nests session_type": Exchange(
        f"{SRV}/service/ServiceQuerySessions.py l.112-114",
        "service",
        "GET",
        "/service/sessions",
        200,
        params={"id_session": "{run}", "with_session_type": "true"},
        check=listed(
            lambda s: s["session_type"]["id_session_type"] == 3 and "session_type_name" not in s
        ),
    ),
    # -- 400 and 200 [] --------------------------------------------------------------------
    "user GET without an id is 400": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.59-61", "user", "GET", "/user/sessions", 400
    ),
    "service GET without an id is 400": Exchange(
        f"{SRV}/service/ServiceQuerySessions.py l.104-105",
        "service",
        "GET",
        "/service/sessions",
        400,
    ),
    "user GET of an unknown id_session is 200 []": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.70-71, l.87-99",
        "user",
        "GET",
        "/user/sessions",
        200,
        params={"id_session": 999999},
        check=lambda body, ids: body == [],
    ),
    "user GET events of an unknown session is 200 []": Exchange(
        f"{SRV}/user/UserQuerySessionEvents.py l.44-57",
        "user",
        "GET",
        "/user/sessions/events",
        200,
        params={"id_session": 999999},
        check=lambda body, ids: body == [],
    ),
    "service GET events of an unknown session is 200 []": Exchange(
        f"{SRV}/service/ServiceQuerySessionEvents.py l.47-58",
        "service",
        "GET",
        "/service/sessions/events",
        200,
        params={"id_session": 999999},
        check=lambda body, ids: body == [],
    ),
    "user GET with a non-integer id_session is 400": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.16 (reqparse type=int)",
        "user",
        "GET",
        "/user/sessions",
        400,
        params={"id_session": "abc"},
    ),
    "user POST without session is 400": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.123-124",
        "user",
        "POST",
        "/user/sessions",
        400,
        body={"sessions": {}},
        appends=False,
    ),
    "user POST without id_session is 400": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.129-130",
        "user",
        "POST",
        "/user/sessions",
        400,
        body={"session": {"session_name": "x"}},
        appends=False,
    ),
    "user POST of a new session without participants or users is 400": Exchange(
        f"{SRV}/user/UserQuerySessions.py l.136-139",
        "user",
        "POST",
        "/user/sessions",
        400,
        body={"session": NEW},
        appends=False,
    ),
    "user POST of bad JSON is 400": Exchange(
        "flask request.json on a body that is not JSON",
        "user",
        "POST",
        "/user/sessions",
        400,
        raw=b'{"session": {',
        appends=False,
    ),
    "service POST of a new session without id_session_type is 400": Exchange(
        f"{SRV}/service/ServiceQuerySessions.py l.201-202",
        "service",
        "POST",
        "/service/sessions",
        400,
        body={"session": {"id_session": 0}},
        appends=False,
    ),
    "device POST without id_session_type is 400": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.102-104",
        "device",
        "POST",
        "/device/sessions",
        400,
        body={"session": {"id_session": 0, "session_participants": []}},
        appends=False,
    ),
    "device POST of a new session without members is 400": Exchange(
        f"{SRV}/device/DeviceQuerySessions.py l.106-109",
        "device",
        "POST",
        "/device/sessions",
        400,
        body={"session": {**NEW}},
        appends=False,
    ),
    "participant POST of a new session without session_name is 400": Exchange(
        f"{SRV}/participant/ParticipantQuerySessions.py l.149-151",
        "participant",
        "POST",
        "/participant/sessions",
        400,
        body={"session": {k: v for k, v in OWN_NEW.items() if k != "session_name"}},
        appends=False,
    ),
    # -- defaults of a new session ---------------------------------------------------------
    "a new session without a status is in progress (user)": Exchange(
        f"{MODEL} l.457-458",
        "user",
        "POST",
        "/user/sessions",
        200,
        body={"session": {"id_session": 0, "session_participants_ids": [11]}},
        check=listed(lambda s: s["session_status"] == 1),
    ),
    "a new session without a status is in progress (service)": Exchange(
        f"{SRV}/service/ServiceQuerySessions.py l.217-218",
        "service",
        "POST",
        "/service/sessions",
        200,
        body={"session": {"id_session": 0, "id_session_type": 2}},
        check=listed(lambda s: s["session_status"] == 1 and s["session_duration"] == 0),
    ),
}


@pytest.fixture
def keyring(container: Container, admin_key: str) -> dict[str, str]:
    engine = container.store.write_engine
    both = ["ingest", "read"]
    return {
        "user": admin_key,
        "service": admin_key,
        "device": keys.create(engine, "device-5", both, binding="opentera-device:5"),
        "participant": keys.create(engine, "participant-7", both, binding="opentera-participant:7"),
    }


SEEDS = {
    # name: (status, created_by, members); the newest first when listed
    "run": ("running", "user:1", {"participants": ["11"], "users": ["1"]}),
    "done": ("completed", "device:5", {"participants": ["12"], "users": ["ux"]}),
    "member": ("running", "user:1", {"participants": ["7"]}),
    "mine": ("queued", "participant:7", {}),
    "other": ("running", "user:1", {"participants": ["8"]}),
}


@pytest.fixture
def ids(client: TestClient, container: Container, clock: Any) -> dict[str, int]:
    """The seeded sessions (ledger commands, type 3), one a minute apart; their numbers."""
    for name, (status, by, members) in SEEDS.items():
        cmds: list[c.Command] = [
            c.StartSession(
                session_id=name,
                source="opentera",
                type="3",
                by=by,
                **members,
                status="queued" if status == "queued" else "running",
            )
        ]
        if status == "completed":
            cmds.append(c.StopSession(session_id=name, by=by))
        for out in container.ledger.submit(cmds).result(10):
            assert not isinstance(out, Exception), out
        clock.advance(60)
    assert container.runner.wait_for(container.ledger.last_position, 10)
    return {n: client.get(f"/v1/sessions/{n}").json()["number"] for n in SEEDS}


def fill(value: Any, ids: dict[str, int]) -> Any:
    """`value` with its "{name}" placeholders replaced by the seeded numbers."""
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    return value


def head(container: Container) -> int:
    return container.store.head_digest()[0]


@pytest.mark.parametrize("name", EXCHANGES)
def test_recorded_exchange(
    client: TestClient,
    container: Container,
    keyring: dict[str, str],
    ids: dict[str, int],
    name: str,
) -> None:
    ex = EXCHANGES[name]
    before = head(container)
    r = client.request(
        ex.method,
        BASE + ex.path,
        params={**fill(ex.params, ids), "token": keyring[ex.who]},
        json=None if ex.raw is not None else fill(ex.body, ids),
        content=ex.raw,
        headers={"content-type": "application/json"} if ex.raw is not None else None,
    )
    assert r.status_code == ex.status, (ex.cite, r.text)
    assert r.status_code < 500
    if ex.check is not None:
        body = r.json() if r.content else r.content
        assert ex.check(body, ids), (ex.cite, body)
    if not ex.appends or r.status_code >= 400:
        assert head(container) == before, ex.cite  # a refusal appends nothing
