"""`/docs` and `/redoc` work without internet: every script and style they load is served by
the ledger itself, and a real browser that can reach nothing but loopback renders them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.browser import chromium, need_chromium
from tests.conftest import LiveServer

NO_KEY = {"Authorization": ""}


def loaded_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documents_load_only_from_this_server(client: TestClient, page: str) -> None:
    r = client.get(page, headers=NO_KEY)
    assert r.status_code == 200
    urls = loaded_urls(r.text)
    assert urls, "the page loads its scripts from somewhere"
    assert "cdn" not in r.text and "fonts.googleapis" not in r.text
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from outside this server"
        asset = client.get(url, headers=NO_KEY)  # open, like the page itself
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
        assert asset.headers["x-content-type-options"] == "nosniff"


def test_only_the_bundled_assets_are_served(client: TestClient) -> None:
    for name in ("..%2F..%2Fpyproject.toml", "core.py", "%2Fetc%2Fpasswd", "swagger-ui.css.map"):
        r = client.get(f"/docs/assets/{name}", headers=NO_KEY)
        assert r.status_code in (401, 404), name  # never a file from disk
        assert b"[project]" not in r.content and b"root:" not in r.content


def _rendered(live: LiveServer, page: str, tmp_path: Path) -> str:
    # No internet: every host name but loopback fails to resolve.
    no_internet = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    return chromium(
        tmp_path / "profile", no_internet, "--virtual-time-budget=15000", "--dump-dom",
        live.url + page, timeout=120,
    )  # fmt: skip


@pytest.mark.integration
def test_a_browser_without_internet_renders_both_documents(
    live_server: LiveServer, tmp_path: Path
) -> None:
    need_chromium()
    assert httpx.get(live_server.url + "/openapi.json").status_code == 200
    swagger = _rendered(live_server, "/docs", tmp_path)
    # Swagger UI drew an operation block for the keepalive route from the ledger's document.
    assert "opblock" in swagger and "/v1/sessions/{session_id}/keepalive" in swagger
    redoc = _rendered(live_server, "/redoc", tmp_path)
    assert "Record that the session is alive" in redoc  # an operation's description, drawn
