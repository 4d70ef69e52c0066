"""Blob GET, HEAD and DELETE."""

from __future__ import annotations

import logging
import os

from sqlalchemy import Connection

from trustyard.errors import BlobUnknown
from trustyard.kit.asgi import Scope, Send
from trustyard.oci.digest import parse_digest
from trustyard.oci.ranges import ByteRange, RangeNotSatisfiable, parse_range
from trustyard.registry.context import INLINE_BLOB_BYTES, RegistryContext
from trustyard.registry.errors import ErrorCode, OciError
from trustyard.registry.http import API_VERSION, Headers, Request, respond, respond_error
from trustyard.storage.interfaces import ContentMissing

log = logging.getLogger(__name__)


def _missing_content(digest: str) -> BlobUnknown:
    log.error("blob %s is recorded but missing from storage; run `trustyard fsck`", digest)
    return BlobUnknown(digest, "blob content is missing from storage")


async def get_blob(ctx: RegistryContext, req: Request, send: Send, name: str, ref: str) -> None:
    digest = parse_digest(ref)
    size = ctx.manifests.hot.blob_size(name, str(digest))
    if size is None:
        raise BlobUnknown(ref)
    headers: Headers = [
        (b"content-type", b"application/octet-stream"),
        (b"docker-content-digest", ref.encode()),
        (b"accept-ranges", b"bytes"),
        (b"etag", f'"{ref}"'.encode()),
        (b"cache-control", b"max-age=31536000"),
        API_VERSION,
    ]
    head = req.method == "HEAD"
    byte_range: ByteRange | None = None
    range_header = req.header("range")
    if range_header:
        try:
            byte_range = parse_range(range_header, size)
        except RangeNotSatisfiable:
            error = OciError(ErrorCode.RANGE_INVALID, f"range outside the blob's {size} bytes")
            await respond_error(send, error, [(b"content-range", f"bytes */{size}".encode())])
            return
    if byte_range is not None:
        headers.append(
            (b"content-range", f"bytes {byte_range.start}-{byte_range.end}/{size}".encode())
        )
        await _stream(ctx, send, 206, headers, ref, byte_range.start, byte_range.length, head)
        return
    if head:
        await respond(send, 200, [*headers, (b"content-length", str(size).encode())], head=True)
        return
    path = ctx.driver.local_path(digest)
    if size <= INLINE_BLOB_BYTES and path is not None:
        try:
            with open(path, "rb", buffering=0) as handle:
                data = handle.read()
        except FileNotFoundError:
            raise _missing_content(ref) from None
        await respond(send, 200, headers, data)
        return
    if path is not None and _can_pathsend(req.scope):
        if not os.path.exists(path):
            raise _missing_content(ref)
        headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": str(path)})
        return
    await _stream(ctx, send, 200, headers, ref, 0, size, False)


def _can_pathsend(scope: Scope) -> bool:
    return "http.response.pathsend" in (scope.get("extensions") or {})


async def _stream(
    ctx: RegistryContext,
    send: Send,
    status: int,
    headers: Headers,
    ref: str,
    offset: int,
    length: int,
    head: bool,
) -> None:
    headers = [*headers, (b"content-length", str(length).encode())]
    if head:
        await respond(send, status, headers, head=True)
        return
    try:
        chunks = ctx.driver.read(parse_digest(ref), offset, length)
    except ContentMissing:
        raise _missing_content(ref) from None
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def delete_blob(ctx: RegistryContext, req: Request, send: Send, name: str, ref: str) -> None:
    digest = parse_digest(ref)

    def unlink(conn: Connection) -> bool:
        removed = ctx.store.unlink_blob(conn, name, str(digest))
        if removed:
            ctx.audit(conn, req, "blob.delete", name, {"digest": str(digest)})
        return removed

    removed = await ctx.write(unlink)
    if not removed:
        raise BlobUnknown(ref)
    await respond(send, 202, [API_VERSION])
