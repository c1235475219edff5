"""The dialects' tests send the credentials each system's real clients send: the `client`
here adds them per request, by the path's prefix, unless the test set its own."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Container

MONITOR = "/compat/monitor/"
# A request with this header goes out with no credentials at all.
NO_CREDENTIALS = "x-test-no-credentials"
NONE = {NO_CREDENTIALS: "1"}


def basic(name: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{key}".encode()).decode()


def real_credentials(key: str, name: str = "admin") -> Callable[[httpx.Request], None]:
    """A request hook: each surface's own credential form for `key` (named `name`)."""

    def add(request: httpx.Request) -> None:
        path = request.url.path
        if request.headers.pop(NO_CREDENTIALS, None) is not None:
            return
        carried = ("authorization", "x-canopsis-authkey")
        if any(h in request.headers for h in carried) or "/k/" in path:
            return
        if "token" in request.url.params or "authkey" in request.url.params:
            return
        if path.startswith(MONITOR):  # pytest-monitor sends nothing: the key is in the URL
            request.url = request.url.copy_with(path=f"{MONITOR}k/{key}/{path[len(MONITOR) :]}")
        elif path.startswith(("/compat/lambdatest/", "/compat/canopsis/")):
            request.headers["Authorization"] = basic(name, key)
        elif path.startswith("/compat/opentera/"):
            request.headers["Authorization"] = f"OpenTera {key}"
        else:  # native and Testmo
            request.headers["Authorization"] = f"Bearer {key}"

    return add


@pytest.fixture
def client(container: Container, admin_key: str) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as cl:
        cl.event_hooks["request"].append(real_credentials(admin_key))
        yield cl
