"""Manifest GET, HEAD, PUT and DELETE."""

from __future__ import annotations

from sqlalchemy import Connection

from trustyard.content.manifests import PushedManifest, acceptable
from trustyard.errors import ManifestInvalid, ManifestTooLarge, ManifestUnknown
from trustyard.events import model as events
from trustyard.kit.asgi import Send
from trustyard.oci import mediatypes as mt
from trustyard.registry.context import RegistryContext
from trustyard.registry.http import API_VERSION, ClientGone, Request, respond

_TOO_LARGE = ManifestTooLarge(f"manifest is larger than the {mt.MAX_MANIFEST_BYTES} byte limit")


async def get_manifest(
    ctx: RegistryContext, req: Request, send: Send, name: str, reference: str
) -> None:
    record = ctx.manifests.get(name, reference)
    if not acceptable(record.media_type, req.accept()):
        raise ManifestUnknown(
            reference,
            f"the manifest is a {record.media_type}, which the Accept header does not allow",
            {"mediaType": record.media_type},
        )
    headers = [
        (b"content-type", record.media_type.encode()),
        (b"docker-content-digest", record.digest.encode()),
        (b"etag", f'"{record.digest}"'.encode()),
        API_VERSION,
    ]
    head = req.method == "HEAD"
    if not head and ctx.pulls is not None and ctx.pulls.wanted():
        pulled = events.manifest_pulled(
            name, reference, record.digest, record.media_type, ctx.actor(req)
        )
        ctx.pulls.record(pulled)
    await respond(send, 200, headers, record.payload, head=head)


async def put_manifest(
    ctx: RegistryContext, req: Request, send: Send, name: str, reference: str
) -> None:
    try:
        body = await req.read_body(mt.MAX_MANIFEST_BYTES, _TOO_LARGE)
    except ClientGone as gone:
        raise ManifestInvalid(f"manifest body incomplete: {gone}") from None
    content_type = req.header("content-type")

    def push(conn: Connection) -> PushedManifest:
        pushed = ctx.manifests.put(conn, name, reference, body, content_type, ctx.actor(req))
        detail = {"digest": str(pushed.digest)}
        if ":" not in reference:
            detail["tag"] = reference
        ctx.record(conn, req, pushed.events, "manifest.push", name, detail)
        return pushed

    pushed = await ctx.write(push)
    headers = [
        (b"location", ctx.location(f"/v2/{name}/manifests/{pushed.digest}").encode()),
        (b"docker-content-digest", str(pushed.digest).encode()),
        API_VERSION,
    ]
    if pushed.subject:
        headers.append((b"oci-subject", pushed.subject.encode()))
    await respond(send, 201, headers)


async def delete_manifest(
    ctx: RegistryContext, req: Request, send: Send, name: str, reference: str
) -> None:
    def delete(conn: Connection) -> None:
        deleted = ctx.manifests.delete(conn, name, reference, ctx.actor(req))
        if ":" in reference:
            ctx.record(conn, req, deleted.events, "manifest.delete", name, {"digest": reference})
        else:
            ctx.record(conn, req, deleted.events, "tag.delete", name, {"tag": reference})

    await ctx.write(delete)
    await respond(send, 202, [API_VERSION])
