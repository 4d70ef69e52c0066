"""The one way the scanner makes a package URL's text from its parts."""

from __future__ import annotations

from packageurl import PackageURL


def purl_text(
    type: str,
    name: str,
    version: str | None = None,
    *,
    namespace: str | None = None,
    qualifiers: dict[str, str] | None = None,
    subpath: str | None = None,
) -> str | None:
    """`pkg:type/namespace/name@version?qualifiers#subpath`, or None when the parts cannot
    make one. packageurl raises ValueError for some parts and TypeError for a name that
    normalises to nothing ("/", " "): a package list that names such a package must cost only
    that package, never the rest of the layer's findings."""
    try:
        return str(
            PackageURL(
                type=type,
                namespace=namespace,
                name=name,
                version=version,
                qualifiers=qualifiers,
                subpath=subpath,
            ).to_string()
        )
    except (ValueError, TypeError):
        return None
