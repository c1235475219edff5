"""pytest-monitor's page links keep the `/k/<key>/` the request came in with, so a client
that sends no credentials stays authenticated following them; without it they stay as
they were."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.dialects.test_monitor import CONTEXT, metric

PM = "/compat/monitor/api/v1"
HASHES = [f"{i:02}" * 20 for i in range(5)]
CONTEXTS = [str(CONTEXT["h"]), "7" * 32, "8" * 32]  # listed in h order


@pytest.fixture
def recorded(client: TestClient) -> None:
    for h in HASHES:
        body = {"session_h": h, "run_date": "2024-01-01T00:00:00", "description": {}}
        assert client.post(f"{PM}/sessions/", json=body).status_code == 201
    for h in CONTEXTS:
        assert client.post(f"{PM}/contexts/", json={**CONTEXT, "h": h}).status_code == 201
    for i in range(5):
        m = metric(f"test_{i}", session_h=HASHES[0])
        assert client.post(f"{PM}/metrics/", json=m).status_code == 201, m


def follow(client: TestClient, url: str, key: str, link: str = "next_url") -> list[Any]:
    """Every item from `url` on, following `link`; each request carries no credential but
    the URL (the test client adds none to a path with /k/ in it)."""
    items: list[Any] = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text)
        body = r.json()
        items += next(v for k, v in body.items() if isinstance(v, list))
        url = body.get(link, "")
        assert not url or url.startswith(f"/compat/monitor/k/{key}/api/v1/"), url
    return items


@pytest.mark.parametrize(
    ("tail", "field", "want"),
    [
        ("sessions/", "session_h", HASHES),
        (f"sessions/{HASHES[0]}/metrics", "item", [f"test_{i}" for i in range(5)]),
        ("contexts/", "h", CONTEXTS),
    ],
    ids=["sessions", "metrics", "contexts"],
)
def test_links_keep_the_key_of_the_request(
    client: TestClient, admin_key: str, recorded: None, tail: str, field: str, want: list[str]
) -> None:
    base = f"/compat/monitor/k/{admin_key}/api/v1"
    forward = follow(client, f"{base}/{tail}?per_page=2", admin_key)
    assert [i[field] for i in forward] == want
    pages = -(-len(want) // 2)
    backward = follow(client, f"{base}/{tail}?page={pages}&per_page=2", admin_key, "prev_url")
    assert sorted(i[field] for i in backward) == sorted(want)


def test_the_double_slash_form_keeps_the_key_too(
    client: TestClient, admin_key: str, recorded: None
) -> None:
    url = f"/compat/monitor/k/{admin_key}/api/v1//sessions/?per_page=2"
    assert client.get(url).json()["next_url"] == (
        f"/compat/monitor/k/{admin_key}/api/v1//sessions/?per_page=2&page=2"
    )


def test_links_of_a_request_without_the_key_prefix_are_unchanged(
    client: TestClient, admin_key: str, recorded: None
) -> None:
    auth = {"Authorization": f"Bearer {admin_key}"}
    first = client.get(f"{PM}/sessions/", params={"per_page": 2}, headers=auth).json()
    assert first["next_url"] == f"{PM}/sessions/?per_page=2&page=2"
    last = client.get(f"{PM}/sessions/", params={"page": -1}, headers=auth).json()
    assert "next_url" not in last and "prev_url" not in last  # one page of 500
    second = client.get(first["next_url"], headers=auth).json()
    assert second["prev_url"] == f"{PM}/sessions/?per_page=2&page=1"
