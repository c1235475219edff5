"""LambdaTest's session files: screenshots, video, an artifact's stored content, and the logs
(command, selenium, network, console, network.har without bodies, full-har as uploaded)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.deps import FreshDep
from api.dialects.lambdatest.shape import HAR_MESSAGE, LOGS, detail_of
from api.render import UPLOAD_HEADERS, uploaded_content
from domain.errors import SessionNotFoundError
from projections.present import iso

router = APIRouter()


def _artifact_url(request: Request, session_id: str, index: int, art: dict[str, Any]) -> str:
    if art.get("url"):
        return str(art["url"])
    return str(request.url_for("lt_artifact", session_id=session_id, index=str(index)))


@router.get("/sessions/{session_id}/screenshots", name="lt_screenshots")
def screenshots(session_id: str, request: Request, container: FreshDep) -> dict[str, Any]:
    """All step by step screenshots (the session's screenshot artifacts, in order)."""
    arts = detail_of(container, session_id)["artifacts"]
    shots = [(i, a) for i, a in enumerate(arts) if a["kind"] == "screenshot"]
    return {
        "data": [
            {"id": f"screenshot_{n}", "timestamp": iso(a["at"]), "title": a.get("title"),
             "url": _artifact_url(request, session_id, i, a)}
            for n, (i, a) in enumerate(shots, 1)
        ],
        "message": "Retrieve screenshot url was successful",
        "status": "success",
    }  # fmt: skip


@router.get("/sessions/{session_id}/video", name="lt_video")
def video(session_id: str, request: Request, container: FreshDep) -> dict[str, Any]:
    """The recorded video (the latest video artifact)."""
    arts = list(enumerate(detail_of(container, session_id)["artifacts"]))
    vids = [(i, a) for i, a in arts if a["kind"] == "video"]
    if not vids:
        raise SessionNotFoundError(f"Session {session_id} has no video")
    i, art = vids[-1]
    url = _artifact_url(request, session_id, i, art)
    # VideoResponse's url and view_video_url, and the seed's data.video_url
    return {"message": "Retrieve video url was successful", "status": "success", "url": url,
            "view_video_url": url, "data": {"video_url": url}}  # fmt: skip


@router.get("/sessions/{session_id}/artifacts/{index}", name="lt_artifact")
def artifact(session_id: str, index: int, container: FreshDep) -> Response:
    """The stored content of a screenshot or video uploaded without a URL."""
    arts = detail_of(container, session_id)["artifacts"]
    if not 0 <= index < len(arts) or not arts[index].get("sha256"):
        raise SessionNotFoundError(f"Session {session_id} has no stored artifact {index}")
    art = arts[index]
    return uploaded_content(
        container.blobs.get(art["sha256"]),
        art.get("content_type") or "application/octet-stream",
        f"{art['kind']}-{index}",
    )


def _strip(part: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in part.items() if k not in keys} if isinstance(part, dict) else part


def without_content(har: Any) -> Any:
    """A HAR without its bodies (request postData text and params, response content text):
    what LambdaTest's network.har holds; full-har is the file with them."""
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        return har
    entries = []
    for e in log["entries"]:
        if isinstance(e, dict):
            req, resp = e.get("request"), e.get("response")
            if isinstance(req, dict) and "postData" in req:
                e = {
                    **e,
                    "request": {**req, "postData": _strip(req["postData"], ("text", "params"))},
                }
            if isinstance(resp, dict) and "content" in resp:
                e = {**e, "response": {**resp, "content": _strip(resp["content"], ("text",))}}
        entries.append(e)
    return {**har, "log": {**log, "entries": entries}}


@router.get("/sessions/{session_id}/log/{kind}", name="lt_log")
def get_log(session_id: str, kind: str, container: FreshDep) -> Response:
    """Command, selenium, network, console logs and HAR: the latest upload of that kind.

    JSON content is answered as stored (wrapped in `data` unless it is already an object);
    text is answered as `{"data": "<text>"}`, since the clients parse every answer as JSON.
    `network.har` is the HAR without request and response bodies, `full-har` the HAR file as
    uploaded (bodies included), as a download, as LambdaTest documents them.
    """
    if kind not in LOGS:
        raise SessionNotFoundError(f"no log {kind!r}; one of {', '.join(LOGS)}")
    logs = [lg for lg in detail_of(container, session_id)["logs"] if lg["kind"] == LOGS[kind]]
    if not logs:
        raise SessionNotFoundError(f"Session {session_id} has no {kind} log")
    content = container.blobs.get(logs[-1]["sha256"])
    if kind == "full-har":
        return uploaded_content(content, "application/octet-stream", "full.har")
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        return JSONResponse({"data": content.decode(errors="replace")}, headers=UPLOAD_HEADERS)
    if kind == "network.har":
        body = {"data": without_content(parsed), "message": HAR_MESSAGE, "status": "success"}
        return JSONResponse(body, headers=UPLOAD_HEADERS)
    if isinstance(parsed, dict):
        return Response(content, media_type="application/json", headers=UPLOAD_HEADERS)
    return JSONResponse({"data": parsed}, headers=UPLOAD_HEADERS)
