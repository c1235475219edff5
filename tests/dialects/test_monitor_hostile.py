"""Hostile input on the pytest-monitor routes the reference server taught the dialect
(POST /sessions/<hash> and /contexts/<hash>, GET /metrics/, /metrics/count,
/contexts/<hash>/metrics and its count, the pages): odd and oversized hashes, bad JSON, wrong
types, odd pages, a wrong key. Never a 5xx; every refusal in the dialect's shape, appending
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.bootstrap import Container
from tests.dialects.conftest import NONE
from tests.dialects.test_monitor import CONTEXT, PM, SESSION_H, metric, new_session

ODD = ["x" * 5000, "..", "%2F", "é∂", "%25", "' OR 1=1 --", " ", "context:x", "0" * 64]
READS = ["metrics/", "metrics/count", "contexts/{h}/metrics", "contexts/{h}/metrics/count"]
READS += ["sessions/{h}/metrics", "sessions/{h}/metrics/count", "sessions/{h}", "contexts/{h}"]


def head(container: Container) -> int:
    return container.store.head_digest()[0]


@pytest.fixture
def recorded(client: TestClient) -> None:
    assert client.post(f"{PM}/contexts/", json=CONTEXT).status_code == 201
    assert new_session(client).status_code == 201
    assert client.post(f"{PM}/metrics/", json=metric()).status_code == 201


def shaped(r: Any) -> None:
    """A refusal in the dialect's shape: JSON with a message (or the HTML page of a path the
    API does not have, as the reference's)."""
    assert r.status_code < 500, r.text
    if r.status_code >= 400 and r.headers["content-type"].startswith("application/json"):
        assert isinstance(r.json()["message"], str)


@pytest.mark.parametrize("tail", READS)
def test_odd_hashes_and_pages_on_every_read(client: TestClient, recorded: None, tail: str) -> None:
    for h in ODD:
        r = client.get(f"{PM}/{tail.format(h=h)}")
        shaped(r)
        assert r.status_code in (200, 204, 404), (h, r.status_code)
    url = f"{PM}/{tail.format(h=SESSION_H if 'sessions' in tail else CONTEXT['h'])}"
    for page in ("", "-0", "1e3", "0x10", str(10**40), str(-(10**40)), "٣"):
        shaped(client.get(url, params={"page": page}))
    for per_page in ("0", "-1", str(10**9), "x", str(10**40)):
        r = client.get(url, params={"per_page": per_page})
        shaped(r)
        if "count" not in tail:
            assert r.status_code == 400, (per_page, r.text)


@pytest.mark.parametrize("kind", ["sessions", "contexts"])
def test_posts_with_a_hash_in_the_path_refuse_what_they_must(
    client: TestClient, container: Container, kind: str
) -> None:
    before = head(container)
    for h in ["x" * 5000, "é∂", "a b", "%2F"]:
        body = {"run_date": "2021-01-01", "scm_ref": "x", "description": {}}
        r = client.post(f"{PM}/{kind}/{h}", json=body if kind == "sessions" else {})
        shaped(r)
        assert 400 <= r.status_code < 500, (h, r.text)
    for bad in (b"{", b"[]", b"null", b'"s"', b"{" * 10000, b"\xff\xfe"):
        r = client.post(f"{PM}/{kind}/x", content=bad, headers={"content-type": "application/json"})
        shaped(r)
        assert r.status_code == 400, (bad[:10], r.text)
    wrong = {"session_h": ["x"], "run_date": 5, "scm_ref": {}, "description": {"a": [1]}}
    body = wrong if kind == "sessions" else {**CONTEXT, "h": 5, "cpu_count": 1.5}
    r = client.post(f"{PM}/{kind}/x", json=body)
    assert r.status_code == 400 and r.json()["errors"], r.text
    assert head(container) == before


def test_an_oversized_session_hash_is_refused_by_the_ledgers_id_rule(
    client: TestClient, container: Container
) -> None:
    before = head(container)
    r = new_session(client, "h" * 201)
    assert r.status_code in (400, 413) and "message" in r.json()
    r = client.post(f"{PM}/contexts/", json={**CONTEXT, "h": "c" * 201})
    assert r.status_code in (400, 413) and "message" in r.json()
    assert head(container) == before


def test_a_wrong_key_on_the_new_routes_is_401(client: TestClient) -> None:
    for tail in ("metrics/", "metrics/count", f"contexts/{CONTEXT['h']}/metrics"):
        r = client.get(f"/compat/monitor/k/sl_bad/api/v1/{tail}", headers=NONE)
        assert r.status_code == 401, tail
        r = client.get(f"{PM}/{tail}", headers=NONE)
        assert r.status_code == 401, tail
