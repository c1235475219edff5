"""Uploaded content as the API serves it back: an attachment that is never rendered."""

from __future__ import annotations

from starlette.responses import Response

# Uploaded content is the clients', not ours: never sniffed, rendered or scripted on the
# API's origin (stored XSS), whatever type it was uploaded as.
UPLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


def uploaded_content(data: bytes, media_type: str, name: str) -> Response:
    """An uploaded blob served back as a download, with its recorded type."""
    headers = {**UPLOAD_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type=media_type, headers=headers)
