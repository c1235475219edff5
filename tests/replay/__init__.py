"""Shared helpers for the replay tests: a varied history written through the real ledger, and
the environment that points `ledger replay` at the test's database."""

from __future__ import annotations

from typing import Any

import pytest

from api.bootstrap import Container
from domain import commands as c


def point_cli_at(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    s = container.settings
    monkeypatch.setenv("LEDGER_DATABASE_URL", s.database_url)
    monkeypatch.setenv("LEDGER_VIEWS_URL", s.views_url)
    monkeypatch.setenv("LEDGER_BLOB_DIR", str(s.blob_dir))


def make_history(container: Container, clock: Any) -> dict[str, Any]:
    """Six sessions over three days: keepalives with paths, status moves, results, a log and
    an artifact blob, a stop, an expiry and a deletion. Returns marks taken along the way."""
    run = container.ledger.execute
    marks: dict[str, Any] = {}
    sha, size = container.blobs.put(b"console log line 1\nline 2\n")
    shot, shot_size = container.blobs.put(b"\x89PNG fake screenshot bytes")
    run(
        c.StartSession(
            session_id="s1",
            name="login test",
            project="web",
            build="b1",
            user="ann",
            attributes={"browser": "chrome", "os": "linux"},
        )
    )
    run(c.KeepAlive(session_id="s1", visible=True, path="/home"))
    clock.advance(30)
    run(c.KeepAlive(session_id="s1", visible=True, path="/cart"))
    clock.advance(12)
    run(c.Hide(session_id="s1", path="/cart"))
    run(c.RecordResult(session_id="s1", status="passed", test="t_login"))
    run(
        c.UploadLog(
            session_id="s1", kind="console", content_type="text/plain", size=size, sha256=sha
        )
    )
    run(
        c.StartSession(
            session_id="s2",
            project="web",
            build="b1",
            user="bob",
            attributes={"browser": "firefox", "os": "mac"},
        )
    )
    clock.advance(60)
    run(c.StopSession(session_id="s1"))
    run(c.ChangeStatus(session_id="s1", status="passed"))
    marks["day1_end"] = clock.now
    marks["day1_position"] = container.store.head_digest()[0]
    clock.advance(86400)
    run(c.StartSession(session_id="s3", project="api", status="queued", user="ann"))
    run(c.ChangeStatus(session_id="s3", status="running"))
    run(
        c.AttachArtifact(
            session_id="s2",
            kind="screenshot",
            content_type="image/png",
            size=shot_size,
            sha256=shot,
        )
    )
    run(c.KeepAlive(session_id="s2", visible=True, path="/home"))
    clock.advance(300)
    run(c.RecordResult(session_id="s3", status="failed", test="t_api"))
    run(c.ChangeStatus(session_id="s2", status="failed"))
    run(c.StopSession(session_id="s2"))
    run(
        c.StartSession(session_id="s4", project="web", user="cyd", attributes={"browser": "chrome"})
    )
    clock.advance(2000)
    run(c.ExpireSession(session_id="s4", timeout=900))
    marks["day2_end"] = clock.now
    clock.advance(86400)
    run(c.StartSession(session_id="s5", project="api", attributes={"browser": "safari"}))
    run(c.KeepAlive(session_id="s5", visible=True, path="/docs"))
    clock.advance(5)
    run(c.StartSession(session_id="s6", project="web", attributes={"browser": "chrome"}))
    run(c.DeleteSession(session_id="s5"))
    run(c.UpdateDetails(session_id="s6", changes={"name": "renamed", "tags": {"team": "qa"}}))
    marks["sha"] = sha
    marks["shot"] = shot
    container.store.integrate_tree()  # as the worker's integrator does (persistence/integrator.py)
    return marks
