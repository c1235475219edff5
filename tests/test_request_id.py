"""X-Request-ID: a sane one is echoed, anything else is replaced (never echoed raw), and every
answer carries one: the lean lane, the router, the gate's refusals, 404s and 500s."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.observe import accepted

GOOD = ("0f8fad5b-d9cb-469f-a165-70867728950e", "Root=1-5759e988-bd862e3fe1be46a994272793",
        "a" * 128, "trace.id:42/x+y@z_1")  # fmt: skip
HOSTILE = ("a\r\nSet-Cookie: x=1", "a\nb", "x" * 129, "x" * 100_000, "caf\u00e9", "a b",
           '"quoted"', "<script>", "a;b", "")  # fmt: skip


def rid(response: Any) -> str:
    value = response.headers.get("x-request-id")
    assert value, response.headers
    return str(value)


@pytest.mark.parametrize("value", GOOD)
def test_a_sane_request_id_is_echoed(client: TestClient, value: str) -> None:
    assert rid(client.get("/healthz", headers={"X-Request-ID": value})) == value
    client.post("/v1/sessions", json={"id": "s-1"})
    lane = client.post("/v1/sessions/s-1/keepalive", json={}, headers={"X-Request-ID": value})
    assert lane.status_code == 200 and rid(lane) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_request_id_is_replaced_never_echoed(value: str) -> None:
    raw = value.encode("utf-8")
    assert not accepted(raw)


def test_hostile_ids_over_http_are_replaced(client: TestClient) -> None:
    for value in ("x" * 129, "x" * 20_000, "a b", '"q"', "a;b"):
        got = rid(client.get("/healthz", headers={"X-Request-ID": value}))
        assert got != value and accepted(got.encode())
    got = rid(client.get("/healthz", headers=[("X-Request-ID", "caf\u00e9".encode())]))  # type: ignore[arg-type]
    assert accepted(got.encode())


def test_every_answer_gets_an_id_and_each_a_new_one(client: TestClient) -> None:
    client.post("/v1/sessions", json={"id": "s-1"})
    answers = [
        client.get("/healthz"),  # open route
        client.get("/v1/sessions/s-1"),  # router
        client.post("/v1/sessions/s-1/keepalive", json={}),  # lean lane
        client.post("/v1/sessions/nope/keepalive", json={}),  # lane refusal (404)
        client.get("/no/such/route"),  # 404
        client.get("/v1/sessions", headers={"Authorization": "Bearer wrong"}),  # gate: 401
        client.post("/v1/sessions/s-1/keepalive", json={}, headers={"Authorization": ""}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 404, 401, 401]
    ids = [rid(a) for a in answers]
    assert len(set(ids)) == len(ids) and all(accepted(i.encode()) for i in ids)


def test_500s_carry_the_id_in_the_lane_and_the_router(container: Any, admin_key: str) -> None:
    app = create_app(container=container)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the writer broke")

    headers = {"Authorization": f"Bearer {admin_key}", "X-Request-ID": "r-500"}
    with TestClient(app, raise_server_exceptions=False, headers=headers) as cl:
        cl.post("/v1/sessions", json={"id": "s-1"})
        routed = cl.get("/v1/boom")
        container.ledger.submit_async = broken  # the lane's command fails unexpectedly
        lane = cl.post("/v1/sessions/s-1/keepalive", json={})
    assert (routed.status_code, rid(routed)) == (500, "r-500")
    assert (lane.status_code, rid(lane)) == (500, "r-500")
    assert lane.text == routed.text == "Internal Server Error"
