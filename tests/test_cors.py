"""CORS: off by default; with LEDGER_CORS_ORIGINS, allowed origins get their preflight
answered without a key and every answer (lane, refusals) carries the CORS headers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from api import keys
from api.app import create_app
from api.bootstrap import bootstrap
from persistence.settings import Settings
from tests.conftest import ROOT, bearer

SITE = "https://dash.example.com"
PREFLIGHT = {
    "Origin": SITE,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, if-match",
}


def app_with(settings: Settings, clock, origins: tuple[str, ...]) -> Iterator[TestClient]:
    c = bootstrap(replace(settings, cors_origins=origins), clock=clock)
    keys.create_schema(c.store.write_engine)
    key = keys.create(c.store.write_engine, "admin", ["admin"])
    with TestClient(create_app(container=c), headers=bearer(key)) as cl:
        yield cl
    c.close()


@pytest.fixture
def cors(settings, clock) -> Iterator[TestClient]:
    yield from app_with(settings, clock, (SITE, "http://localhost:5173"))


def test_off_by_default_no_cors_header_and_preflight_needs_a_key(client) -> None:
    r = client.get("/v1/sessions", headers={"Origin": SITE})
    assert not any(h.startswith("access-control-") for h in r.headers) and "vary" not in r.headers
    pre = client.options("/v1/sessions", headers={**PREFLIGHT, "Authorization": ""})
    assert pre.status_code == 401


def test_an_allowed_origins_preflight_is_answered_without_a_key(cors) -> None:
    r = cors.options("/v1/sessions/s1/keepalive", headers={**PREFLIGHT, "Authorization": ""})
    assert r.status_code == 204 and r.content == b""
    assert r.headers["access-control-allow-origin"] == SITE
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == PREFLIGHT["Access-Control-Request-Headers"]
    assert "access-control-allow-credentials" not in r.headers
    assert "Origin" in r.headers["vary"]


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "https://dash.example.com.evil", "null", SITE + ":443"]
)
def test_another_origin_gets_no_preflight_and_no_cors_headers(cors, origin) -> None:
    pre = cors.options("/v1/sessions", headers={**PREFLIGHT, "Origin": origin, "Authorization": ""})
    assert pre.status_code == 401 and "access-control-allow-origin" not in pre.headers
    r = cors.get("/v1/sessions", headers={"Origin": origin})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert r.headers["vary"] == "Origin"


def test_a_hostile_request_headers_list_is_not_echoed(cors) -> None:
    bad = {**PREFLIGHT, "Access-Control-Request-Headers": "x\r\n, a b", "Authorization": ""}
    r = cors.options("/v1/sessions", headers=bad)
    assert r.status_code == 204 and "access-control-allow-headers" not in r.headers


def test_answers_lane_refusals_included_carry_the_headers(cors) -> None:
    o = {"Origin": SITE}
    answers = [
        cors.post("/v1/sessions", json={"id": "s1"}, headers=o),  # router
        cors.post("/v1/sessions/s1/keepalive", json={}, headers=o),  # lane
        cors.post("/v1/sessions/s1/keepalive", json={}, headers={**o, "If-Match": '"1"'}),  # 412
        cors.get("/v1/sessions/s1", headers={**o, "Authorization": ""}),  # the gate's 401
        cors.get("/v1/sessions/ghost", headers=o),  # 404
    ]
    assert [r.status_code for r in answers] == [201, 200, 412, 401, 404]
    for r in answers:
        assert r.headers["access-control-allow-origin"] == SITE
        exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {"ETag", "Location", "X-Ledger-Position", "Link", "X-Request-ID"} <= exposed


def test_star_allows_any_origin_without_credentials(settings, clock) -> None:
    for cl in app_with(settings, clock, ("*",)):
        r = cl.get("/v1/sessions", headers={"Origin": "https://anyone.example"})
        assert r.headers["access-control-allow-origin"] == "*"
        pre = cl.options("/v1/sessions", headers={**PREFLIGHT, "Authorization": ""})
        assert pre.status_code == 204 and "access-control-allow-credentials" not in pre.headers


@pytest.mark.parametrize(
    "value",
    ["https://a.example/", "https://a.example/path", "a.example", "*,https://a.example",
     "ftp://a.example", "https://A.example", "https://a.example:99999999"],
)  # fmt: skip
def test_a_bad_origin_setting_is_one_line_and_exit_2(tmp_path, value) -> None:
    with pytest.raises(ValueError):
        Settings.from_env(cors_origins=tuple(value.split(",")))
    env = dict(
        os.environ,
        LEDGER_CORS_ORIGINS=value,
        LEDGER_DATABASE_URL=f"sqlite:///{tmp_path}/l.db",
        LEDGER_BLOB_DIR=str(tmp_path / "blobs"),
    )
    out = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "LEDGER_CORS_ORIGINS" in out.stderr


def test_good_origin_settings_are_read(monkeypatch) -> None:
    monkeypatch.setenv("LEDGER_CORS_ORIGINS", " https://a.example , http://127.0.0.1:8080,")
    s = Settings.from_env()
    assert s.cors_origins == ("https://a.example", "http://127.0.0.1:8080")
    monkeypatch.delenv("LEDGER_CORS_ORIGINS")
    assert Settings.from_env().cors_origins == ()
