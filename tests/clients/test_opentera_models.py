"""The OpenTera dialect's session objects against OpenTera's own model: the `opentera` 1.3.1
package (PyPI; the server's models) in a venv of its own, cached under
var/opentera-venv/<key>. Each session the dialect answers is rebuilt as a TeraSession from
what the server would have stored (parameters as the string it keeps, members as its
participant, user and device rows) and its `to_json` must give back the very same object:
the same field names, types and values (TeraSession.py lines 58-120)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.clients.venvs import pinned_venv

ROOT = Path(__file__).resolve().parents[2]
PINS = ("opentera==1.3.1",)  # its own requirements are pinned exactly
BASE = "/compat/opentera/api"

pytestmark = [pytest.mark.client]

# Runs in the opentera venv: stdin [[session, minimal], ...] -> stdout [to_json, ...].
REBUILD = r"""
import json, sys
from datetime import datetime
from opentera.db.models import *  # noqa: F403 (every model, so the mappers configure)
from opentera.db.models.TeraDevice import TeraDevice
from opentera.db.models.TeraParticipant import TeraParticipant
from opentera.db.models.TeraProject import TeraProject
from opentera.db.models.TeraSession import TeraSession
from opentera.db.models.TeraUser import TeraUser

COLUMNS = ("id_session", "session_uuid", "session_name", "session_duration", "session_status",
           "id_session_type", "id_creator_user", "id_creator_device", "id_creator_participant",
           "id_creator_service", "session_comments")

def make(cls, **attrs):
    obj = cls()  # some models take no keyword arguments
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj

def participant(m):
    p = make(TeraParticipant, id_participant=m["id_participant"],
             participant_uuid=m["participant_uuid"], participant_name=m["participant_name"])
    p.participant_project = make(TeraProject, id_project=m["id_project"],
                                 project_name=m["project_name"])
    return p

def user(m):
    u = make(TeraUser, id_user=m["id_user"], user_uuid=m["user_uuid"])
    # The ledger knows no names (they are null): the server's would be first + last name.
    u.get_fullname = lambda: m["user_name"]
    return u

def rebuild(s):
    t = make(TeraSession, **{k: s[k] for k in COLUMNS if k in s})
    if s["session_start_datetime"] is not None:
        t.session_start_datetime = datetime.fromisoformat(s["session_start_datetime"])
    params = s.get("session_parameters")
    # The server keeps parameters as a string (TeraSession.insert/update dump a dict).
    t.session_parameters = json.dumps(params) if isinstance(params, dict) else params
    t.session_participants = [participant(m) for m in s.get("session_participants", [])]
    t.session_users = [user(m) for m in s.get("session_users", [])]
    t.session_devices = [make(TeraDevice, id_device=m["id_device"], device_uuid=m["device_uuid"],
                              device_name=m["device_name"])
                         for m in s.get("session_devices", [])]
    return t

out = [rebuild(s).to_json(minimal=minimal) for s, minimal in json.load(sys.stdin)]
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="session")
def opentera_venv() -> Path:
    """A venv with the pinned package, built once and reused while the pins do not change."""
    return pinned_venv("opentera-venv", PINS)


def to_json(venv: Path, sessions: list[tuple[dict[str, Any], bool]]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", REBUILD],
        input=json.dumps(sessions), capture_output=True, text=True, timeout=120, cwd=venv,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return list(json.loads(done.stdout))


def test_the_dialects_sessions_are_what_opentera_to_json_makes(
    opentera_venv: Path, client: TestClient
) -> None:
    posts = [
        {"session_name": "full", "session_status": 2, "session_duration": 75,
         "session_start_datetime": "2023-11-14T22:13:20+00:00", "id_session_type": 3,
         "session_comments": "c", "session_parameters": '{"camera": "front"}',
         "session_participants_ids": [11], "session_users_ids": [1], "session_devices_ids": [4],
         "id_creator_user": 1},
        {"session_name": "raw", "session_parameters": "not json", "session_participants_ids": [2]},
    ]  # fmt: skip
    numbers = []
    for fields in posts:
        r = client.post(f"{BASE}/user/sessions", json={"session": {"id_session": 0, **fields}})
        assert r.status_code == 200, r.text
        numbers.append(r.json()[0]["id_session"])
    svc = {"id_session": 0, "id_session_type": 2, "session_participants_uuids": ["pu"],
           "session_users_uuids": ["uu"], "session_devices_uuids": ["du"]}  # fmt: skip
    r = client.post(f"{BASE}/service/sessions", json={"session": svc})
    assert r.status_code == 200, r.text
    numbers.append(r.json()[0]["id_session"])
    answers: list[tuple[dict[str, Any], bool]] = []
    for number in numbers:
        for minimal in (False, True):
            got = client.get(f"{BASE}/user/sessions",
                             params={"id_session": number, "list": minimal})  # fmt: skip
            answers.append((got.json()[0], minimal))
    assert len(answers) == 6
    for (ours, minimal), theirs in zip(answers, to_json(opentera_venv, answers), strict=True):
        assert ours == theirs, (minimal, ours, theirs)
