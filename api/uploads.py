"""Uploads into the blob store, streamed: a raw body or a multipart form's first file is
written chunk by chunk under the upload cap, never held whole in memory."""

from __future__ import annotations

import asyncio

from starlette.datastructures import UploadFile
from starlette.requests import Request

from domain.errors import InvalidCommandError
from domain.rules import check_media_type
from persistence.blobs import BlobStore, BlobWriter

CHUNK = 1 << 16


async def store_upload(request: Request, blobs: BlobStore, max_bytes: int) -> tuple[str, int, str]:
    """(sha256, size, content type) of the stored upload; an empty upload is refused."""
    ctype = request.headers.get("content-type") or "application/octet-stream"
    writer = blobs.writer(max_bytes)
    try:
        if ctype.startswith("multipart/form-data"):
            ctype = await _from_form(request, writer)
        else:
            async for chunk in request.stream():
                writer.write(chunk)
        check_media_type(ctype, "Content-Type")
        if writer.size == 0:
            raise InvalidCommandError("the body is empty: send the content", field="body")
        sha, size = await asyncio.to_thread(writer.commit)
    except BaseException:
        writer.abort()
        raise
    return sha, size, ctype


async def _from_form(request: Request, writer: BlobWriter) -> str:
    # Starlette spools form files to disk past 1 MB; the edge's cap bounds the whole body.
    form = await request.form(max_files=1, max_fields=100)
    files = [v for v in form.values() if isinstance(v, UploadFile)]
    if not files:
        raise InvalidCommandError("the form has no file", field="file")
    while chunk := await files[0].read(CHUNK):
        writer.write(chunk)
    return files[0].content_type or "application/octet-stream"
