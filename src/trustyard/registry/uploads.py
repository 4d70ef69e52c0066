"""Blob uploads: POST (session, monolithic, mount), PATCH, PUT, GET status, DELETE."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import Connection

from trustyard.auth.authorize import Action, Resource
from trustyard.content.interfaces import UploadRecord
from trustyard.content.uploads import ChunkWriter
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import DigestInvalid, DomainError, RangeInvalid, SizeInvalid
from trustyard.kit.asgi import Send
from trustyard.oci.digest import DEFAULT_ALGORITHM, Digest, parse_digest
from trustyard.oci.names import is_valid_name
from trustyard.oci.ranges import parse_content_range
from trustyard.registry.context import RegistryContext
from trustyard.registry.errors import oci_error
from trustyard.registry.http import (
    API_VERSION,
    ClientGone,
    Headers,
    Request,
    respond,
    respond_error,
)


def _session_headers(ctx: RegistryContext, upload: UploadRecord) -> Headers:
    end = max(upload.offset - 1, 0)
    location = ctx.location(f"/v2/{upload.repository}/blobs/uploads/{upload.id}")
    return [
        (b"location", location.encode()),
        (b"range", f"0-{end}".encode()),
        (b"docker-upload-uuid", upload.id.encode()),
        (b"blob-upload-session-id", upload.id.encode()),
        API_VERSION,
    ]


async def _created(ctx: RegistryContext, send: Send, name: str, digest: Digest) -> None:
    headers = [
        (b"location", ctx.location(f"/v2/{name}/blobs/{digest}").encode()),
        (b"docker-content-digest", str(digest).encode()),
        API_VERSION,
    ]
    await respond(send, 201, headers)


async def start_upload(ctx: RegistryContext, req: Request, send: Send, name: str) -> None:
    mount = req.params.get("mount")
    if mount is not None and await _try_mount(ctx, req, name, mount):
        await _created(ctx, send, name, parse_digest(mount))
        return
    digest_param = req.params.get("digest")
    expected = parse_digest(digest_param) if digest_param is not None else None
    upload = await ctx.write(lambda conn: ctx.uploads.start(conn, name))
    if expected is None:
        await respond(send, 202, _session_headers(ctx, upload))
        return
    # Monolithic upload: the whole blob is the body of the POST.
    await _finish(ctx, req, send, upload, expected, start=None)


def mount_source(req: Request, name: str | None) -> str | None:
    """The repository a mount request (`?mount=D&from=S`) reads from: a valid name other
    than the target, else None. The token flow asks for pull on it as well."""
    source = req.params.get("from")
    if "mount" not in req.params or source is None or source == name:
        return None
    return source if is_valid_name(source) else None


async def _try_mount(ctx: RegistryContext, req: Request, name: str, mount: str) -> bool:
    """Link an existing blob into `name`; False means fall back to a normal upload.

    Without `from`, the open registry mounts from any repository holding the blob (the OCI
    spec's optional automatic discovery); with accounts on it never does, whatever the
    credential: a registry token names the repositories it may read, and a mount without
    `from` names none the client could have asked a token for, so Basic credentials get the
    same plain upload as a token would (clients send `from`: docker, containerd, skopeo)."""
    try:
        digest = str(parse_digest(mount))
    except DigestInvalid:
        return False
    source = req.params.get("from")
    if source is None and ctx.accounts is not None:
        return False
    with read_tx(ctx.engine) as conn:
        holders = ctx.store.repositories_with_blob(conn, digest)
    if source is not None:
        candidates = [source] if source in holders and is_valid_name(source) else []
    else:  # automatic mount in the open registry: any repository holding it
        candidates = holders
    subject = req.scope["trustyard.subject"]
    if not any(ctx.authorize(subject, Action.PULL, Resource("repository", c)) for c in candidates):
        return False

    def link(conn: Connection) -> bool:
        happened = ctx.uploads.mount(conn, name, digest, ctx.actor(req))
        if happened is None:
            return False
        ctx.record(conn, req, happened)
        return True

    return await ctx.write(link)


def _confirm(ctx: RegistryContext, upload: UploadRecord) -> Callable[[], bool]:
    def still_at() -> bool:
        with read_tx(ctx.engine) as conn:
            return ctx.uploads.still_at(conn, upload)

    return still_at


async def _write_body(req: Request, chunk: ChunkWriter, sync: bool = True) -> None:
    """Append the request body; `sync` makes it durable before the offset is recorded."""
    try:
        async for data in req.chunks():
            chunk.write(data)
        if sync:
            await asyncio.to_thread(chunk.writer.sync)
    except BaseException:
        chunk.writer.close()
        raise


def _chunk_start(req: Request, upload: UploadRecord) -> int | None:
    header = req.header("content-range")
    if not header:
        return None
    byte_range = parse_content_range(header)
    declared = req.content_length
    if declared is not None and declared != byte_range.length:
        raise RangeInvalid(
            f"Content-Range covers {byte_range.length} bytes but Content-Length is {declared}",
            {"offset": upload.offset},
        )
    return byte_range.start


async def _receive_chunk(
    ctx: RegistryContext, req: Request, upload: UploadRecord, start: int | None
) -> ChunkWriter:
    chunk = await asyncio.to_thread(
        ctx.uploads.open_chunk, upload, start, DEFAULT_ALGORITHM, _confirm(ctx, upload)
    )
    await _write_body(req, chunk)
    return chunk


async def patch_upload(
    ctx: RegistryContext, req: Request, send: Send, name: str, upload_id: str
) -> None:
    with read_tx(ctx.engine) as conn:
        upload = ctx.uploads.get(conn, name, upload_id)
    try:
        start = _chunk_start(req, upload)
        chunk = await _receive_chunk(ctx, req, upload, start)
    except RangeInvalid as error:
        await _range_error(ctx, send, upload, error)
        return
    try:
        upload = await ctx.write(lambda conn: ctx.uploads.record_chunk(conn, chunk))
    finally:
        chunk.writer.close()
    await respond(send, 202, _session_headers(ctx, upload))


async def _range_error(
    ctx: RegistryContext, send: Send, upload: UploadRecord, error: DomainError
) -> None:
    """416 with the session's current Range, so the client knows where to resume."""
    with read_tx(ctx.engine) as conn:
        current = ctx.store.get_upload(conn, upload.id) or upload
    await respond_error(send, oci_error(error), _session_headers(ctx, current))


async def put_upload(
    ctx: RegistryContext, req: Request, send: Send, name: str, upload_id: str
) -> None:
    digest_param = req.params.get("digest")
    if not digest_param:
        raise DigestInvalid("the digest query parameter is required")
    expected = parse_digest(digest_param)
    with read_tx(ctx.engine) as conn:
        upload = ctx.uploads.get(conn, name, upload_id)
    try:
        start = _chunk_start(req, upload)
    except (RangeInvalid, SizeInvalid) as error:
        await _range_error(ctx, send, upload, error)
        return
    await _finish(ctx, req, send, upload, expected, start)


async def _finish(
    ctx: RegistryContext,
    req: Request,
    send: Send,
    upload: UploadRecord,
    expected: Digest,
    start: int | None,
) -> None:
    """Take an optional last chunk, verify the digest, publish the blob, end the session."""
    chunk = await asyncio.to_thread(
        ctx.uploads.open_chunk, upload, start, expected.algorithm, _confirm(ctx, upload)
    )
    try:
        # No sync here: publishing fsyncs the finished blob once.
        await _write_body(req, chunk, sync=False)
        await asyncio.to_thread(ctx.uploads.verify, chunk, expected)
    except DomainError:
        if chunk.size != upload.offset:  # keep what arrived, so the client may retry the PUT
            await asyncio.to_thread(chunk.writer.sync)
            await ctx.write(lambda conn: ctx.uploads.record_chunk(conn, chunk))
        chunk.writer.close()
        raise
    except ClientGone:
        chunk.writer.close()
        raise

    def publish_and_record() -> None:
        ctx.uploads.publish(chunk, expected)
        with write_tx(ctx.engine) as conn:
            happened = ctx.uploads.complete(conn, upload, expected, chunk.size, ctx.actor(req))
            ctx.record(conn, req, happened)

    await asyncio.to_thread(publish_and_record)
    await _created(ctx, send, upload.repository, expected)


async def upload_status(
    ctx: RegistryContext, req: Request, send: Send, name: str, upload_id: str
) -> None:
    with read_tx(ctx.engine) as conn:
        upload = ctx.uploads.get(conn, name, upload_id)
    await respond(send, 204, _session_headers(ctx, upload))


async def cancel_upload(
    ctx: RegistryContext, req: Request, send: Send, name: str, upload_id: str
) -> None:
    def cancel(conn: Connection) -> None:
        ctx.uploads.cancel(conn, ctx.uploads.get(conn, name, upload_id))

    await ctx.write(cancel)
    await respond(send, 204, [API_VERSION])
