"""A hypothesis state machine drives random valid and invalid commands through every way in
(native routes, batch lines, a dialect) and checks, after each, that a refused command
appended nothing and no answer was a server error; at the end the views have caught up with
the log and every session's detail equals the fold of its events."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from api import keys
from api.app import create_app
from api.bootstrap import bootstrap
from persistence.settings import Settings
from tests.conftest import FakeClock

IDS = st.sampled_from(["a", "b", "c"]) | st.text(min_size=0, max_size=6)
TEXT = st.none() | st.text(max_size=8) | st.integers() | st.booleans()
TIME = st.none() | st.floats(allow_nan=True) | st.text(max_size=5) | st.integers(-5, 10**19)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
LINES = st.fixed_dictionaries(
    {"command": st.sampled_from(["start", "keepalive", "hide", "status", "update", "stop"])},
    optional={
        "session_id": IDS,
        "visible": st.booleans() | TEXT,
        "path": TEXT,
        "status": st.sampled_from(["running", "passed", "failed", "bogus"]) | TEXT,
        "started_at": TIME,
        "tags": st.dictionaries(st.text(max_size=3), TEXT, max_size=3) | TEXT,
        "changes": st.dictionaries(
            st.sampled_from(["name", "tags", "status", "logs", "ended_at", "number"]), ANY_JSON
        )
        | ANY_JSON,
    },
)


class Ingest(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp: Path | None = None

    @initialize(data=st.data())
    def open_ledger(self, data: Any) -> None:
        import tempfile

        self.dir = tempfile.TemporaryDirectory()
        root = Path(self.dir.name)
        s = Settings(
            database_url=f"sqlite:///{root}/l.db", blob_dir=root / "b", expiry_interval=3600
        )
        self.container = bootstrap(s, clock=FakeClock())
        keys.create_schema(self.container.store.write_engine)
        self.key = keys.create(self.container.store.write_engine, "admin", ["admin"])
        self.client = TestClient(
            create_app(container=self.container),
            headers={"Authorization": f"Bearer {self.key}"},
            raise_server_exceptions=False,
        )
        self.client.__enter__()
        self.last: Any = None

    def head(self) -> int:
        return self.container.store.head_digest()[0]

    def send(self, method: str, url: str, **kw: Any) -> None:
        before = self.head()
        r = self.client.request(method, url, **kw)
        self.last = (method, url, kw, r.status_code, r.text[:300])
        assert r.status_code < 500, self.last
        if r.status_code >= 400:
            assert self.head() == before, ("a refused command appended", self.last)

    @rule(sid=IDS, body=st.dictionaries(st.sampled_from(["name", "tags", "started_at"]), TEXT))
    def start(self, sid: str, body: dict[str, Any]) -> None:
        self.send("POST", "/v1/sessions", json={"id": sid, **body})

    @rule(sid=IDS, visible=st.booleans() | TEXT, path=TEXT)
    def keepalive(self, sid: str, visible: Any, path: Any) -> None:
        body = {"visible": visible, "path": path}
        self.send("POST", f"/v1/sessions/{quote(sid, safe='')}/keepalive", json=body)

    @rule(sid=IDS, status=st.sampled_from(["running", "passed", "failed", "error"]) | TEXT)
    def status(self, sid: str, status: Any) -> None:
        self.send("POST", f"/v1/sessions/{quote(sid, safe='')}/status", json={"status": status})

    @rule(sid=IDS)
    def stop(self, sid: str) -> None:
        self.send("POST", f"/v1/sessions/{quote(sid, safe='')}/stop")

    @rule(sid=IDS, content=st.binary(max_size=20))
    def upload(self, sid: str, content: bytes) -> None:
        self.send("POST", f"/v1/sessions/{quote(sid, safe='')}/logs/console", content=content)

    @rule(lines=st.lists(LINES, min_size=1, max_size=5))
    def batch(self, lines: list[dict[str, Any]]) -> None:
        body = "\n".join(json.dumps(line) for line in lines).encode()
        before = self.head()
        r = self.client.post("/v1/events:batch", content=body)
        self.last = ("batch", lines, r.status_code, r.text[:300])
        assert r.status_code < 500, self.last
        if r.status_code == 200 and r.json()["accepted"] == 0:
            assert self.head() == before, ("refused lines appended", self.last)

    @rule(sid=IDS, name=TEXT, status=st.sampled_from(["passed", "failed", "x"]))
    def lambdatest_patch(self, sid: str, name: Any, status: str) -> None:
        basic = base64.b64encode(f"admin:{self.key}".encode()).decode()
        self.send(
            "PATCH",
            f"/compat/lambdatest/automation/api/v1/sessions/{quote(sid, safe='')}",
            json={"name": name, "status_ind": status},
            headers={"Authorization": f"Basic {basic}"},
        )

    @invariant()
    def views_follow_the_log(self) -> None:
        if not hasattr(self, "container"):
            return
        runner = self.container.runner
        assert runner.wait_for(self.head(), timeout=10), "the views froze"

    def teardown(self) -> None:
        if not hasattr(self, "container"):
            return
        try:
            ledger = self.container.ledger
            for sid in ("a", "b", "c"):
                r = self.client.get(f"/v1/sessions/{sid}")
                if r.status_code == 404:
                    continue
                view, folded = r.json(), ledger.load(sid)
                for field in ("status", "keepalives", "version", "name", "tags"):
                    assert view[field] == folded[field], (sid, field)
        finally:
            self.client.__exit__(None, None, None)
            self.container.close()
            self.dir.cleanup()


TestIngest = Ingest.TestCase
TestIngest.settings = settings(
    max_examples=12,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
