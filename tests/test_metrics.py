"""GET /metrics: Prometheus text that a scraper parses, behind the `metrics` scope, counting
answers by route template (never the raw path), with the views' lag and the last verify run
that `ledger replay verify` recorded."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api import keys
from tests.conftest import ROOT, LiveServer, bearer, make_key

SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf)$')


def samples(text: str) -> dict[str, float]:
    """Every sample line as `name{labels}` -> value; fails on a line Prometheus would refuse."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a 0.0.4 sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_metrics_need_a_key_with_the_metrics_scope(client: TestClient, container: Any) -> None:
    engine = container.store.write_engine
    scraper = keys.create(engine, "prometheus", ["metrics"])
    reader = keys.create(engine, "reader", ["read", "audit"])
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    assert client.get("/metrics", headers=bearer(reader)).status_code == 403
    ok = client.get("/metrics", headers=bearer(scraper))
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    # The scraper's key reads nothing else.
    assert client.get("/v1/sessions", headers=bearer(scraper)).status_code == 403
    assert client.get("/metrics").status_code == 200  # admin implies metrics


def test_answers_are_counted_by_route_template_never_the_raw_path(client: TestClient) -> None:
    for i in range(3):
        client.post("/v1/sessions", json={"id": f"secret-id-{i}"})
        client.post(f"/v1/sessions/secret-id-{i}/keepalive", json={})
        client.get(f"/v1/sessions/secret-id-{i}")
    client.get("/v1/sessions/missing-id")
    client.get("/nowhere/secret-id-9")
    client.request("BREW", "/v1/sessions")
    text = client.get("/metrics").text
    assert "secret-id" not in text and "nowhere" not in text and "BREW" not in text
    got = samples(text)
    keepalive = 'route="/v1/sessions/{session_id}/keepalive",method="POST"'
    assert got[f'ledger_http_requests_total{{{keepalive},status="200"}}'] == 3
    detail = 'route="/v1/sessions/{session_id}",method="GET"'
    assert got[f'ledger_http_requests_total{{{detail},status="200"}}'] == 3
    assert got[f'ledger_http_requests_total{{{detail},status="404"}}'] == 1
    assert got['ledger_http_requests_total{route="unmatched",method="GET",status="404"}'] == 1
    assert any(k.startswith('ledger_http_requests_total{route="/v1/sessions",method="other"')
               for k in got)  # fmt: skip
    assert got[f'ledger_http_request_duration_seconds_bucket{{{keepalive},le="+Inf"}}'] == 3
    assert got[f"ledger_http_request_duration_seconds_count{{{keepalive}}}"] == 3
    buckets = [v for k, v in got.items() if k.startswith(
        f"ledger_http_request_duration_seconds_bucket{{{keepalive}")]  # fmt: skip
    assert buckets == sorted(buckets)  # cumulative
    assert got["ledger_events_appended_total"] == 6
    for view in ("detail", "list", "count", "stats"):
        assert f'ledger_projection_lag_events{{view="{view}"}}' in got


def test_a_refusal_at_the_gate_is_counted_under_its_route(client: TestClient) -> None:
    client.post("/v1/sessions/any-id/stop", headers={"Authorization": "Bearer nope"})
    got = samples(client.get("/metrics").text)
    stop = 'route="/v1/sessions/{session_id}/stop",method="POST",status="401"'
    assert got[f"ledger_http_requests_total{{{stop}}}"] == 1


def verify_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", "replay", "verify"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_live_scrape_shows_the_last_verify_run(live_server: LiveServer, tmp_path: Path) -> None:
    from tests.conftest import ledger_env

    key = make_key(ledger_env(tmp_path), "prometheus", "metrics")
    auth = bearer(key)
    url = live_server.url
    httpx.post(url + "/v1/sessions", json={"id": "s-1"}, headers=bearer(live_server.key))
    first = samples(httpx.get(url + "/metrics", headers=auth).text)
    assert not any(k.startswith("ledger_verify_") for k in first)  # never run: no samples
    done = verify_cli(ledger_env(tmp_path))
    assert done.returncode == 0, done.stderr
    got = samples(httpx.get(url + "/metrics", headers=auth).text)
    assert got["ledger_verify_last_ok"] == 1
    assert got["ledger_verify_last_position"] == 1
    assert got["ledger_verify_last_problems"] == 0
    assert got["ledger_verify_last_run_timestamp_seconds"] > 1.7e9
    assert got["ledger_metrics_read_errors"] == 0
    assert httpx.get(url + "/metrics").status_code == 401


def test_verify_runs_keep_the_latest_hundred(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from persistence import verify_runs
    from persistence.schema import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/views.db")
    try:
        assert verify_runs.last(engine) is None
        for i in range(105):
            verify_runs.record(
                engine, verify_runs.VerifyRun(1.7e9 + i, i % 2 == 0, i, i % 2, False)
            )
        last = verify_runs.last(engine)
        assert last == verify_runs.VerifyRun(1.7e9 + 104, True, 104, 0, False)
        with engine.connect() as conn:
            kept = conn.execute(select(func.count()).select_from(verify_runs.verify_runs))
            assert kept.scalar_one() == verify_runs.KEEP
    finally:
        engine.dispose()
