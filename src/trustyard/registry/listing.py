"""Read-only listings: the base endpoint, catalog, tags and referrers."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from trustyard.auth.authorize import Action, Resource, Subject
from trustyard.content.interfaces import Page
from trustyard.db.engine import read_tx
from trustyard.kit.asgi import Send
from trustyard.oci import mediatypes as mt
from trustyard.oci.names import check_name, check_tag
from trustyard.registry.context import RegistryContext
from trustyard.registry.errors import ErrorCode, OciError
from trustyard.registry.http import API_VERSION, JSON, Headers, Request, respond

MAX_PAGE = 10_000


def _page_size(req: Request) -> int | None:
    """`n`: ASCII digits only (str.isdigit also takes '²' and Arabic-Indic digits); any
    number past MAX_PAGE, however long, means MAX_PAGE."""
    raw = req.params.get("n")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise OciError(
            ErrorCode.PAGINATION_NUMBER_INVALID,
            "n must be a non-negative integer in ASCII digits",
            detail={"n": raw[:40]},
        )
    significant = raw.lstrip("0")
    if len(significant) > len(str(MAX_PAGE)):
        return MAX_PAGE
    return min(int(significant or "0"), MAX_PAGE)


def _cursor(req: Request, check: Callable[[str], str]) -> str | None:
    """`last` must be a proper tag (or repository name): the spec's rule, and it keeps
    values no database can compare (a NUL byte, say) away from the query."""
    last = req.params.get("last") or None
    return check(last) if last is not None else None


def _link(ctx: RegistryContext, path: str, limit: int | None, page: Page) -> Headers:
    if not page.more or not page.items or limit is None:
        return []
    url = ctx.location(f"{path}?n={limit}&last={quote(page.items[-1], safe='')}")
    return [(b"link", f'<{url}>; rel="next"'.encode())]


async def base(ctx: RegistryContext, req: Request, send: Send) -> None:
    await respond(send, 200, [JSON, API_VERSION], b"{}", head=req.method == "HEAD")


async def catalog(ctx: RegistryContext, req: Request, send: Send) -> None:
    limit = _page_size(req)
    last = _cursor(req, check_name)
    if limit == 0:
        page = Page([], False)
    elif ctx.accounts is None:
        with read_tx(ctx.engine) as conn:
            page = ctx.store.catalog(conn, limit, last)
    else:
        page = _visible_catalog(ctx, req.scope["trustyard.subject"], limit, last)
    body = json.dumps({"repositories": page.items}).encode()
    await respond(send, 200, [JSON, API_VERSION, *_link(ctx, "/v2/_catalog", limit, page)], body)


def _visible_catalog(
    ctx: RegistryContext, subject: Subject, limit: int | None, last: str | None
) -> Page:
    """A catalog page of only the repositories `subject` may pull (the others stay unknown)."""
    visible: list[str] = []
    batch = max(limit or 0, 100)
    while True:
        with read_tx(ctx.engine) as conn:
            chunk = ctx.store.catalog(conn, batch, last)
        for name in chunk.items:
            if ctx.authorize(subject, Action.PULL, Resource("repository", name)):
                visible.append(name)
                if limit is not None and len(visible) > limit:
                    return Page(visible[:limit], True)
        if not chunk.more or not chunk.items:
            return Page(visible, False)
        last = chunk.items[-1]


async def tags_list(ctx: RegistryContext, req: Request, send: Send, name: str) -> None:
    limit = _page_size(req)
    last = _cursor(req, check_tag)
    page = ctx.manifests.tags(name, limit, last)
    body = json.dumps({"name": name, "tags": page.items}).encode()
    link = _link(ctx, f"/v2/{name}/tags/list", limit, page)
    await respond(send, 200, [JSON, API_VERSION, *link], body, head=req.method == "HEAD")


async def referrers(ctx: RegistryContext, req: Request, send: Send, name: str, digest: str) -> None:
    artifact_type = req.params.get("artifactType") or None
    with read_tx(ctx.engine) as conn:
        found = ctx.manifests.referrers(conn, name, digest, artifact_type)
    descriptors = []
    for ref in found:
        item: dict[str, object] = {
            "mediaType": ref.media_type,
            "digest": ref.digest,
            "size": ref.size,
        }
        if ref.artifact_type:
            item["artifactType"] = ref.artifact_type
        if ref.annotations:
            item["annotations"] = ref.annotations
        descriptors.append(item)
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
    headers: Headers = [(b"content-type", mt.OCI_INDEX.encode()), API_VERSION]
    if artifact_type is not None:
        headers.append((b"oci-filters-applied", b"artifactType"))
    await respond(send, 200, headers, json.dumps(index).encode())
