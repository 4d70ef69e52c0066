"""Version order over the BOM's ecosystem names, for the policy engine.

The policy engine compares a component's version with a rule's (`django >= 4.2`) through a
`VersionOrder` it is handed (policies/interfaces.py): this module is that order. It reads the
scanner's ecosystem names (`pypi`, `npm`, `golang`, `deb`, `apk`, `rpm`...) and, for a rule
written by hand, the OSV ones (`PyPI`, `Go`, `Debian:12`), case-insensitively, and compares
under the ecosystem's own scheme (versions.py). An ecosystem without a known order, or a
version its scheme cannot read, answers None.
"""

from __future__ import annotations

from trustyard.vulnerabilities.components import LANGUAGE_ECOSYSTEMS, OS_ECOSYSTEMS
from trustyard.vulnerabilities.versions import (
    ECOSYSTEMS,
    Scheme,
    VersionInvalid,
    base_ecosystem,
    compare,
)


def _schemes() -> dict[str, Scheme]:
    table: dict[str, Scheme] = {name.casefold(): scheme for name, scheme in ECOSYSTEMS.items()}
    for bom, osv in LANGUAGE_ECOSYSTEMS.items():
        table[bom] = ECOSYSTEMS[osv]
    table.update(OS_ECOSYSTEMS)
    return table


_SCHEMES = _schemes()


def scheme_of(ecosystem: str) -> Scheme | None:
    """The version scheme of a BOM (or OSV) ecosystem name, None when none is known."""
    return _SCHEMES.get(base_ecosystem(ecosystem).strip().casefold())


def component_version_order(ecosystem: str, a: str, b: str) -> int | None:
    """-1, 0 or 1 as version `a` sorts before, with or after `b` in `ecosystem`; None when the
    ecosystem has no known order or either version does not parse in it."""
    scheme = scheme_of(ecosystem)
    if scheme is None:
        return None
    try:
        return compare(scheme, a.strip(), b.strip())
    except VersionInvalid:
        return None
