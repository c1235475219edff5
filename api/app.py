"""`create_app(settings)`: the FastAPI application, its routers and its lifespan.

Nothing is built at import time: the lifespan bootstraps the container (store, ledger
writer, projection worker, expiry sweeper) and closes it on shutdown.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match

from api import keys, metrics, problems, redact
from api.auth import Gate, Refusal
from api.bootstrap import Container, bootstrap
from api.cors import Cors
from api.expiry import ExpirySweeper
from api.limits import bounded, check_host
from api.observe import Observer
from api.openapi import tidy
from api.routes import audit, batch, commands, docs, health, index, log, queries
from domain.errors import LedgerError
from persistence.settings import BodyLimits, Settings

# The seed systems' session APIs, each a package in api/dialects whose `__init__` has a `router`.
DIALECTS = ("lambdatest", "testmo", "canopsis", "monitor", "opentera")


class ServerTiming:
    """Pure ASGI middleware: how long the app took, as a Server-Timing header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - t0) * 1000
                message["headers"] = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={ms:.3f}".encode()),
                ]
            await send(message)

        await self.app(scope, receive, timed_send)


ASGIApp = Any  # (scope, receive, send) -> awaitable


class LedgerAPI(FastAPI):
    """FastAPI with a fast lane for the hottest commands.

    A `POST` whose path matches a route with a lean twin (keepalive, hide, status, stop; see
    api/routes/lean.py) is served by that twin straight from here, ahead of Starlette's
    middleware stack and router: those layers cost a keepalive more server time than the
    command itself (measured: a fifth of its CPU). Everything else, and every error, is the
    same: a refusal raised by the twin is answered by the app's own exception handlers
    (api/problems), so the lane's problem+json is the stack's. The routes stay in the router
    (OpenAPI, and serving through it when the lane is off, e.g. under a root path).
    """

    lane: list[tuple[re.Pattern[str], ASGIApp]]
    gate: Gate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lane = []
        self.gate = Gate()
        self.body_limits = BodyLimits()
        self.allowed_hosts: tuple[str, ...] = ("*",)
        self.cors: Cors | None = None
        self._lane_wrap: Any = None
        self._lane_routes: dict[Any, APIRoute] = {}
        self.observer = Observer(self._route_of)

    def open_lane(self, wrap: Any = None) -> None:
        """Serve every POST route that has a lean twin from the lane; `wrap` (an ASGI
        middleware class) goes around each whole answer, refusals included."""
        self._lane_wrap = wrap
        self._lane_routes = {
            route.endpoint.__lean__: route
            for route in self.router.routes
            if isinstance(route, APIRoute) and hasattr(route.endpoint, "__lean__")
        }
        self.lane = [
            (route.path_regex, twin)
            for route in self.router.routes
            if isinstance(route, APIRoute)
            if (twin := getattr(getattr(route, "endpoint", None), "__lean__", None)) is not None
            and "POST" in getattr(route, "methods", ())
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            send = self.observer.watch(scope, send)  # X-Request-ID, request metrics
            if self.cors is not None:  # None unless LEDGER_CORS_ORIGINS is set (api/cors.py)
                send = self.cors.wrap(scope, send)
            # The one gate: every request is authenticated and authorised here, before the
            # lane and the router (api/auth.py), so no route can be reached around it; its
            # Host is one this ledger serves and its body is counted against its cap
            # (api/limits.py).
            try:
                check_host(scope, self.allowed_hosts)
                if self.cors is not None and await self.cors.preflight(scope, send):
                    return  # a browser's preflight carries no key: answered before the gate
                await self.gate.check(scope)
                receive = bounded(scope, receive, self.body_limits)
            except LedgerError as err:
                await self._refuse(Refusal(err, {}), scope, receive, send)
                return
            except Refusal as refusal:
                await self._refuse(refusal, scope, receive, send)
                return
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path = scope["path"]
            for regex, twin in self.lane:
                match = regex.match(path)
                if match is not None:
                    scope["app"] = self
                    scope["route"] = self._lane_routes[twin]  # the metrics' route label
                    scope["path_params"] = match.groupdict()
                    if self._lane_wrap is None:
                        await self._serve_lane(twin, scope, receive, send)
                    else:
                        serve = partial(self._serve_lane, twin)
                        await self._lane_wrap(serve)(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The document FastAPI builds from the routes, finished by api/openapi.py `tidy`."""
        if self.openapi_schema is None:
            self.openapi_schema = tidy(super().openapi())
        return self.openapi_schema

    async def _refuse(self, refusal: Refusal, scope: Any, receive: Any, send: Any) -> None:
        # The app's own handler renders it, so a dialect's clients get their error shape.
        handler = self.exception_handlers[LedgerError]
        response = await _awaited(handler(Request(scope, receive), refusal.error))
        for name, value in refusal.headers.items():
            response.headers[name] = value
        await response(scope, receive, send)

    async def _serve_lane(self, twin: ASGIApp, scope: Any, receive: Any, send: Any) -> None:
        try:
            await twin(scope, receive, send)
        except ClientDisconnect:
            return
        except Exception as exc:
            handler = None
            for cls in type(exc).__mro__:
                if cls is Exception:
                    break  # no handler: a 500, as the stack's error middleware answers
                handler = self.exception_handlers.get(cls)
                if handler is not None:
                    break
            if handler is None:
                # What the stack's error middleware does: answer 500, then let the server log it.
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
                raise
            response = await _awaited(handler(Request(scope, receive), exc))
            await response(scope, receive, send)

    def _route_of(self, scope: dict[str, Any]) -> str:
        """The template of the route `scope` asks for, for an answer given before routing (a
        refusal at the gate); "unmatched" when none does (a 404). Never the raw path."""
        for route in self.router.routes:
            if route.matches(scope)[0] is not Match.NONE:
                return cast(str, getattr(route, "path", "unmatched"))
        return "unmatched"


async def _awaited(response: Response | Awaitable[Response]) -> Response:
    """An exception handler's answer (Starlette types them as sync or async)."""
    return await response if inspect.isawaitable(response) else response


def start_worker_process(settings: Settings) -> subprocess.Popen[bytes]:
    """`ledger project` as a child process on the same databases."""
    env = dict(
        os.environ,
        LEDGER_DATABASE_URL=settings.database_url,
        LEDGER_VIEWS_URL=settings.views_url,
        LEDGER_PARENT_PID=str(os.getpid()),
    )
    return subprocess.Popen([sys.executable, "-m", "api.cli", "project"], env=env)


def create_app(settings: Settings | None = None, container: Container | None = None) -> LedgerAPI:
    settings = settings or (container.settings if container else Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = container is None
        c = container or bootstrap(settings)
        c.start()
        gate = cast(LedgerAPI, app).gate
        gate.attach(keys.KeyRing(c.store.read_engine, settings.key_refresh), c)
        redact.install()
        worker = start_worker_process(settings) if settings.projection_worker == "process" else None
        sweeper = ExpirySweeper(c)
        sweeper.start()
        app.state.container = c
        app.state.worker = worker  # /readyz watches that it still runs
        try:
            yield
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=10)
            sweeper.close()
            if own:
                c.close()

    app = LedgerAPI(
        title="Session Ledger",
        version="0.1.0",
        description="An event-sourced ledger of sessions. Native API under /v1; "
        "the seed systems' session APIs under /compat.",
        lifespan=lifespan,
        docs_url=None,  # served from the package's own assets instead (api/routes/docs.py)
        redoc_url=None,
    )
    app.gate = Gate(settings.allow_anonymous)
    app.body_limits = settings.body_limits
    app.allowed_hosts = settings.allowed_hosts
    app.cors = Cors(settings.cors_origins) if settings.cors_origins else None
    problems.install(app)

    if settings.bench_noop:

        @app.post("/noop", include_in_schema=False)
        async def noop() -> dict[str, bool]:
            # The benchmark's baseline: a no-op through FastAPI's standard request handling,
            # matched first (the lane serves the lean command twins ahead of all of it).
            return {"ok": True}

    _mount(app, settings)
    return app


def _mount(app: LedgerAPI, settings: Settings) -> None:
    """Every router of the app, in matching order, and the lane ahead of them."""
    if settings.server_timing:
        app.add_middleware(ServerTiming)
    for module in (commands, queries, batch, audit, log):
        app.router.routes.extend(module.router.routes)
    for name in DIALECTS:
        app.router.routes.extend(importlib.import_module(f"api.dialects.{name}").router.routes)
    app.open_lane(ServerTiming if settings.server_timing else None)

    # The probes (/healthz, /readyz), the root's links (/), the docs, Prometheus (/metrics).
    for module in (health, index, docs, metrics):
        app.router.routes.extend(module.router.routes)
