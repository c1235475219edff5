"""The no-op apps the HTTP baselines serve: `POST /noop` -> {"ok": true}.

`app` is FastAPI: the endpoint does not read the request body, so it measures the floor of
uvicorn + FastAPI routing + JSON response rendering, not request validation. `raw` is a
bare ASGI callable under the same uvicorn: the floor of the server alone, with no framework,
the ceiling any endpoint of this process could reach on this machine.
"""

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/noop")
async def noop() -> dict[str, bool]:
    return {"ok": True}


_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})
