"""The vulnerabilities of an image's BOMs: the one matching that the registry (on scan, and
again on every database update) and `trustyard scan --vulns` share, so both give the same set.

`image_components` reads BOMs (`ImageBom.to_json`, every platform) into the components to
look up (`components.target_of`), with the ones left out and why; `match` looks each up in an
`Index` (`VulnerabilityService.index_for(conn, packages(components))`), once per distinct
target. Pure: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trustyard.vulnerabilities.components import Target, reason_untargeted, target_of
from trustyard.vulnerabilities.index import Finding, Index
from trustyard.vulnerabilities.interfaces import ImageComponent, ImageFinding, Package


def image_components(
    boms: Sequence[Mapping[str, Any]],
) -> tuple[list[ImageComponent], list[tuple[Mapping[str, Any], str]]]:
    """The components of `boms` to match, and the others with the reason each is left out."""
    found: list[ImageComponent] = []
    left_out: list[tuple[Mapping[str, Any], str]] = []
    for bom in boms:
        distro = bom.get("distro")
        platform = str(bom.get("platform", ""))
        for component in bom.get("components", ()):
            target = target_of(component, distro)
            if target is None:
                left_out.append((component, reason_untargeted(component, distro)))
                continue
            found.append(
                ImageComponent(
                    platform=platform,
                    ecosystem=component["ecosystem"],
                    name=component["name"],
                    version=component["version"],
                    purl=component.get("purl", ""),
                    layer=component.get("layer", ""),
                    target=target,
                )
            )
    return found, left_out


def packages(components: Iterable[ImageComponent]) -> set[Package]:
    """The (ecosystem, name) pairs to ask the database for."""
    return {(c.target.ecosystem, c.target.name) for c in components}


def match(index: Index, components: Iterable[ImageComponent]) -> list[ImageFinding]:
    """Every finding of every component, in component order then vulnerability id."""
    known: dict[Target, list[Finding]] = {}
    result: list[ImageFinding] = []
    for component in components:
        target = component.target
        findings = known.get(target)
        if findings is None:
            findings = index.findings(target.ecosystem, target.name, target.version)
            known[target] = findings
        result.extend(finding_of(component, f) for f in findings)
    return result


def finding_of(component: ImageComponent, finding: Finding) -> ImageFinding:
    rating = finding.severity
    return ImageFinding(
        component=component,
        vuln_id=finding.id,
        record_ids=finding.record_ids,
        aliases=finding.aliases,
        bucket=str(rating.bucket),
        score=rating.score,
        vector=rating.vector,
        fixed=finding.fixed,
    )
