"""SPDX 2.3 JSON for one image or every platform of an index, written as plain JSON.

One package per image (primary purpose CONTAINER, version = manifest digest), one per
component, one OPERATING-SYSTEM package per image with a known distribution. The document
DESCRIBES the image, or for several platforms the index package, which CONTAINS each platform
image; each image CONTAINS its components. Where a component comes from (layer, diff id,
files, platform) is in its `sourceInfo`. Licences: `licenseDeclared` is the component's SPDX
expression (every `LicenseRef-` it uses is declared in `hasExtractedLicensingInfos`),
`licenseConcluded` NOASSERTION (trustyard reports what packages declare, it concludes nothing).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from trustyard.scanning.bom import BomComponent, ImageBom, exported_locations, image_purl
from trustyard.scanning.model import BINARY

NOASSERTION = "NOASSERTION"
NAMESPACE_BASE = "https://trustyard.invalid/spdx"  # the document namespace's prefix (no lookup)
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
_REFS = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")


def to_spdx(
    boms: Sequence[ImageBom],
    name: str,
    *,
    index_digest: str | None = None,
    created: datetime | None = None,
) -> str:
    """The SPDX 2.3 JSON document of `boms` (the images of `name`)."""
    from trustyard import __version__

    ids = _Ids()
    packages: list[dict[str, Any]] = []
    relationships: list[dict[str, str]] = []
    refs: set[str] = set()
    if len(boms) == 1:
        roots = [_add_image(boms[0], name, ids, packages, relationships, refs, single=True)]
        described = roots[0]
    else:
        described = ids.make("Index", name)
        packages.append(_container(described, name, index_digest, "", name))
        for image in boms:
            spdx_id = _add_image(image, name, ids, packages, relationships, refs, single=False)
            relationships.append(_relation(described, "CONTAINS", spdx_id))
    relationships.insert(0, _relation("SPDXRef-DOCUMENT", "DESCRIBES", described))
    moment = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"{NAMESPACE_BASE}/{_safe(name) or 'image'}-{uuid.uuid4()}",
        "creationInfo": {
            "created": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: trustyard-{__version__}"],
        },
        "documentDescribes": [described],
        "packages": packages,
        "relationships": relationships,
    }
    if refs:
        document["hasExtractedLicensingInfos"] = [
            {
                "licenseId": ref,
                "name": ref.removeprefix("LicenseRef-"),
                "extractedText": (
                    "A licence the package declares that has no SPDX identifier: "
                    + ref.removeprefix("LicenseRef-")
                ),
            }
            for ref in sorted(refs)
        ]
    return json.dumps(document, indent=2, ensure_ascii=False)


class _Ids:
    """Unique SPDXIDs made of the characters SPDX allows."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def make(self, kind: str, *parts: str) -> str:
        base = "SPDXRef-" + "-".join(filter(None, (kind, *(_safe(p) for p in parts))))
        spdx_id, n = base, 1
        while spdx_id in self.seen:
            n += 1
            spdx_id = f"{base}-{n}"
        self.seen.add(spdx_id)
        return spdx_id


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-")[:120]


def _relation(a: str, kind: str, b: str) -> dict[str, str]:
    return {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}


def _add_image(
    image: ImageBom,
    name: str,
    ids: _Ids,
    packages: list[dict[str, Any]],
    relationships: list[dict[str, str]],
    refs: set[str],
    *,
    single: bool,
) -> str:
    image_id = ids.make("Image", image.platform)
    title = name if single else f"{name} ({image.platform})"
    packages.append(_container(image_id, title, image.manifest_digest, image.platform, name))
    if image.distro is not None:
        distro = image.distro
        os_id = ids.make("OperatingSystem", image.platform, distro.id, distro.version_id)
        package = _package(os_id, distro.id, distro.version_id, "OPERATING-SYSTEM")
        if distro.pretty_name:
            package["description"] = distro.pretty_name
        packages.append(package)
        relationships.append(_relation(image_id, "CONTAINS", os_id))
    for item in image.components:
        spdx_id = ids.make("Package", item.component.ecosystem, item.component.name)
        packages.append(_component(spdx_id, item, image, refs))
        relationships.append(_relation(image_id, "CONTAINS", spdx_id))
    return image_id


def _package(spdx_id: str, name: str, version: str, purpose: str) -> dict[str, Any]:
    package: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": name or "unknown",
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": purpose,
    }
    if version:
        package["versionInfo"] = version
    return package


def _container(
    spdx_id: str, title: str, digest: str | None, platform: str, name: str
) -> dict[str, Any]:
    package = _package(spdx_id, title, digest or "", "CONTAINER")
    purl = image_purl(name, digest, platform)
    if purl:
        package["externalRefs"] = [_purl_ref(purl)]
    return package


def _component(spdx_id: str, item: BomComponent, image: ImageBom, refs: set[str]) -> dict[str, Any]:
    component = item.component
    purpose = "APPLICATION" if component.ecosystem == BINARY else "LIBRARY"
    package = _package(spdx_id, component.name, component.version, purpose)
    if component.licenses and _valid_expression(component.licenses):
        package["licenseDeclared"] = component.licenses
        refs.update(_REFS.findall(component.licenses))
    if _valid_purl(component.purl):
        package["externalRefs"] = [_purl_ref(component.purl)]
    where = [f"found by the {component.detector or component.ecosystem} detector"]
    where.append(f"in layer {item.layer}")
    if item.diff_id:
        where.append(f"(diff id {item.diff_id})")
    if image.platform:
        where.append(f"of the {image.platform} image")
    shown, hidden = exported_locations(component)
    if shown:
        where.append("at " + ", ".join(shown))
    if hidden:
        where.append(f"and {hidden} more files")
    package["sourceInfo"] = " ".join(where)
    return package


def _purl_ref(purl: str) -> dict[str, str]:
    return {
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }


def _valid_purl(text: str) -> bool:
    from packageurl import PackageURL

    if not text:
        return False
    try:
        PackageURL.from_string(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _valid_expression(expression: str) -> bool:
    """A declared licence the SPDX validator accepts: SPDX identifiers and `LicenseRef-`s
    (`licenses.spdx_expression` makes them; anything else is reported as NOASSERTION rather
    than making the document invalid)."""
    from license_expression import ExpressionError, ExpressionParseError

    from trustyard.scanning.licenses import _licensing

    licensing = _licensing()
    try:
        info = licensing.validate(expression)
        unknown = [s for s in info.invalid_symbols if not s.startswith("LicenseRef-")]
        if unknown or (info.errors and not info.invalid_symbols):
            return False
        licensing.parse(expression, validate=True, strict=True)
    except ExpressionParseError:  # an exception used as a licence or the reverse
        return False
    except ExpressionError:  # unknown symbols: the LicenseRef-s allowed above
        return True
    except Exception:  # any other parser failure means "not an expression"
        return False
    return True
