"""The /v2 routes as a table: path pattern, methods, handler and the action each needs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from trustyard.auth.authorize import Action
from trustyard.registry import blobs, listing, manifests, uploads

Handler = Callable[..., Awaitable[None]]

_NAME = r"(?P<name>[^?#]+?)"
_READ = {"GET": Action.PULL, "HEAD": Action.PULL}


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    handlers: dict[str, Handler]
    actions: dict[str, Action]

    @property
    def has_repository(self) -> bool:
        return "name" in self.pattern.groupindex


def _route(name: str, path: str, handlers: dict[str, Handler], **actions: Any) -> Route:
    table = dict(_READ)
    table.update({"PUT": Action.PUSH, "POST": Action.PUSH, "PATCH": Action.PUSH})
    table["DELETE"] = Action.DELETE
    table.update(actions)
    return Route(
        name,
        re.compile(f"^{path}$"),
        handlers,
        {m: table[m] for m in handlers},
    )


ROUTES: tuple[Route, ...] = (
    _route("base", r"/v2/?", {"GET": listing.base, "HEAD": listing.base}),
    _route("catalog", r"/v2/_catalog", {"GET": listing.catalog}, GET=Action.CATALOG),
    _route(
        "tags", rf"/v2/{_NAME}/tags/list", {"GET": listing.tags_list, "HEAD": listing.tags_list}
    ),
    _route(
        "manifest",
        rf"/v2/{_NAME}/manifests/(?P<reference>[^/]+)",
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    _route("upload_start", rf"/v2/{_NAME}/blobs/uploads/?", {"POST": uploads.start_upload}),
    _route(
        "upload",
        rf"/v2/{_NAME}/blobs/uploads/(?P<upload_id>[^/]+)",
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.put_upload,
            "DELETE": uploads.cancel_upload,
        },
        GET=Action.PUSH,
    ),
    _route(
        "blob",
        rf"/v2/{_NAME}/blobs/(?P<digest>[^/]+)",
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    _route("referrers", rf"/v2/{_NAME}/referrers/(?P<digest>[^/]+)", {"GET": listing.referrers}),
)


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is not None:
            return route, found.groupdict()
    return None
