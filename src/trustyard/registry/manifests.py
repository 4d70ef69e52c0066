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
        pushed = ctx.manifests.put(conn, name, reference, body, content_type)
        actor, digest = ctx.actor(req), str(pushed.digest)
        happened: list[events.Event] = []
        if pushed.repository_created:
            ctx.repository_created(conn, req, name)
        detail = {"digest": digest}
        if pushed.created:
            happened.append(
                events.manifest_pushed(
                    name,
                    digest,
                    pushed.media_type,
                    pushed.size,
                    actor,
                    artifact_type=pushed.artifact_type,
                    subject=pushed.subject,
                )
            )
        if ":" not in reference:
            detail["tag"] = reference
            happened.append(events.tag_pushed(name, reference, digest, pushed.media_type, actor))
        ctx.audit(conn, req, "manifest.push", name, detail)
        ctx.publish(conn, *happened)
        if pushed.created and ctx.on_push is not None:
            ctx.on_push(conn, name, pushed, actor)
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
        deleted = ctx.manifests.delete(conn, name, reference)
        actor = ctx.actor(req)
        untagged = [events.tag_deleted(name, tag, deleted.digest, actor) for tag in deleted.tags]
        if ":" in reference:
            ctx.audit(conn, req, "manifest.delete", name, {"digest": reference})
            gone = events.manifest_deleted(name, deleted.digest, deleted.tags, actor)
            ctx.publish(conn, *untagged, gone)
        else:
            ctx.audit(conn, req, "tag.delete", name, {"tag": reference})
            ctx.publish(conn, *untagged)

    await ctx.write(delete)
    await respond(send, 202, [API_VERSION])
