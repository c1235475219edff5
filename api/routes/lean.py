"""One declaration per hot command route (`command_route`), and the two ways it is served.

A hot command (keepalive, hide, status, stop) is declared once: path, body model, how the
command is made, answer status and summary (its documented answer and refusals follow,
api/openapi.py). From that declaration come both (1) a FastAPI
route, which documents it in OpenAPI and serves it whenever a request reaches the router
(e.g. under a proxy's root path), and (2) its lean twin, a plain ASGI app the app's lane
(api/app.py) serves straight from the raw request, ahead of FastAPI's per-request dependency
solving and response building, which cost more loop time than the command itself. Both parse
with the same model, build the command with the same function and answer with the same bytes
(`answer`); their refusals are the same problem+json.

(No `from __future__ import annotations` here: the generated endpoints' annotations must be
real objects for FastAPI to read.)
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Header
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.deps import ContainerDep, execute
from api.media import JSON_ACCEPTED, JSON_BODY, is_json, unsupported
from api.openapi import COMMAND, CommandAnswer, documented
from domain import commands as c
from domain.commands import CommandResult
from domain.errors import InvalidCommandError, PreconditionFailedError

IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
Make = Callable[[str, Any, dict[str, Any]], c.Command]  # (session_id, body | None, meta)


def meta(idem: str | None, if_match: str | None) -> dict[str, Any]:
    """The command fields every way in reads from headers: Idempotency-Key, If-Match."""
    out: dict[str, Any] = {"idempotency_key": idem}
    if if_match:
        tag = if_match.strip()
        if tag == "*":
            return out  # "any current state": the command needs the session anyway
        if tag.startswith("W/"):
            # RFC 9110 §13.1.1: If-Match compares strongly; a weak tag never matches.
            raise PreconditionFailedError(
                "If-Match takes a strong entity tag; a weak one never matches", field="If-Match"
            )
        try:
            out["expected_version"] = int(tag.strip('"'))
        except ValueError:
            raise InvalidCommandError(
                "If-Match must be a stream version", field="If-Match"
            ) from None
    return out


def _answered(result: CommandResult) -> tuple[bytes, bytes, bytes]:
    """A command's answer, the one place it is made: JSON body, ETag, X-Ledger-Position."""
    body = orjson.dumps(
        {
            "id": result.session_id,
            "number": result.number,
            "version": result.version,
            "position": result.position,
            "appended": result.appended,
        }
    )
    return body, b'"%d"' % result.version, b"%d" % result.position


def answer(result: CommandResult, status: int = 200) -> Response:
    """The answer as a response (routes served by the router)."""
    body, etag, position = _answered(result)
    headers = {"ETag": etag.decode(), "X-Ledger-Position": position.decode()}
    return Response(body, status_code=status, headers=headers, media_type="application/json")


# -- parsing a raw body as FastAPI would ------------------------------------------------------


def _invalid(errors: Sequence[Mapping[str, Any]], body: Any) -> RequestValidationError:
    # The app's RequestValidationError handler renders it: the same problem+json as FastAPI's.
    return RequestValidationError(
        [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors], body=body
    )


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        error = {"type": "json_invalid", "loc": ("body", err.pos), "msg": "JSON decode error"}
        raise RequestValidationError(
            [{**error, "input": {}, "ctx": {"error": err.msg}}], body=err.doc
        ) from None


def parse_body(
    model: type[BaseModel], raw: bytes, content_type: bytes | None, optional: bool
) -> Any:
    """What the router makes of a JSON body for `model`: None (optional and absent), a
    model, RequestValidationError naming the field (an unparsable body included), or 415
    for a body not declared JSON (api/media.py)."""
    data: Any = None
    if raw:
        if content_type is None or not is_json(content_type):  # api/media.py check_json
            raise unsupported(content_type, JSON_ACCEPTED)
        data = _json(raw)
    if data is None:
        if optional:
            return None
        raise _invalid([{"type": "missing", "loc": (), "msg": "Field required"}], None)
    try:
        # from_attributes as FastAPI validates bodies (a non-object's error reads the same).
        return model.model_validate(data, from_attributes=True)
    except ValidationError as err:
        raise _invalid(err.errors(include_url=False), data) from None


# -- the declaration ----------------------------------------------------------------------------


def command_route(
    router: APIRouter,
    path: str,
    model: type[BaseModel],
    make: Make,
    *,
    optional: bool = False,
    status: int = 200,
    summary: str,
) -> None:
    """Declare a hot command route once: its FastAPI route (OpenAPI, router serving) and its
    lean twin (`endpoint.__lean__`, which the app's lane serves) are made from this."""
    if optional:

        async def endpoint(
            session_id: str,
            container: ContainerDep,
            body: Annotated[model | None, Body()] = None,  # type: ignore[valid-type]
            idem: IdemKey = None,
            if_match: IfMatch = None,
        ) -> Response:
            cmd = make(session_id, body, meta(idem, if_match))
            return answer(await execute(container, cmd), status)

    else:

        async def endpoint(  # type: ignore[misc]
            session_id: str,
            container: ContainerDep,
            body: Annotated[model, Body()],  # type: ignore[valid-type]
            idem: IdemKey = None,
            if_match: IfMatch = None,
        ) -> Response:
            cmd = make(session_id, body, meta(idem, if_match))
            return answer(await execute(container, cmd), status)

    name = path.rsplit("/", 1)[-1]
    endpoint.__name__ = endpoint.__qualname__ = name.replace("-", "_")
    endpoint.__doc__ = summary
    endpoint.__lean__ = _twin(model, make, optional, status)  # type: ignore[attr-defined]
    responses = documented(CommandAnswer, *COMMAND, 412, 415, status=status)
    router.post(
        path,
        status_code=status,
        response_class=Response,
        responses=responses,
        dependencies=JSON_BODY,
    )(endpoint)


def _twin(model: type[BaseModel], make: Make, optional: bool, status: int) -> Any:
    """The route's lean ASGI app: raw body, headers read once, the same command and answer."""

    async def twin(scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        idem = if_match = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"idempotency-key":
                idem = value.decode("latin-1")
            elif name == b"if-match":
                if_match = value.decode("latin-1")
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        body = parse_body(model, raw, content_type, optional)
        cmd = make(scope["path_params"]["session_id"], body, meta(idem, if_match))
        result = await execute(scope["app"].state.container, cmd)
        body, etag, position = _answered(result)
        # The raw messages `answer`'s Response would send, without building one.
        headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
            (b"etag", etag),
            (b"x-ledger-position", position),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return twin
