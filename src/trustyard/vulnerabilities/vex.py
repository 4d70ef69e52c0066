"""OpenVEX (v0.2.0) documents: read one within bounds into the triage it asserts, and write an
image's triage as one.

A document is `{@context, @id, author, timestamp, version, statements: [...]}`; a statement
says of one vulnerability (`vulnerability.name`, with `aliases`) and some products what its
`status` is: `not_affected` (with a `justification` label or an `impact_statement`),
`affected` (with an `action_statement`), `fixed` or `under_investigation`.

How trustyard reads the products of a statement: a document is imported for a scope (an image,
a repository or an organization), which is the product when a statement names none. A product
that is an image (`pkg:oci/...@sha256:...`, or a bare `sha256:` digest) narrows the statement
to that image; its `subcomponents` (package URLs) narrow it to those components. A product that
is a package URL of another type is the component itself. Each (image digest or none,
component purl or none) pair is a `Target`: one triage row.

Every refusal is a `VexInvalid` naming the statement index and the field. Pure: no database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from packageurl import PackageURL

from trustyard.errors import Invalid
from trustyard.vulnerabilities.interfaces import TriageStatus

CONTEXT = "https://openvex.dev/ns/v0.2.0"
CONTEXT_PREFIX = "https://openvex.dev/ns"

# Bounds of one document: the bytes, its statements, the products of a statement, the
# subcomponents of a product, the triage rows the whole document makes, one text field.
MAX_DOCUMENT_BYTES = 1 << 20
MAX_STATEMENTS = 5000
MAX_PRODUCTS = 500
MAX_SUBCOMPONENTS = 500
MAX_TARGETS = 20000
MAX_TEXT = 8192
MAX_NAME = 128  # vuln_triage.vuln_id
MAX_PURL = 1024  # vuln_triage.component_purl
MAX_ID = 512  # vex_documents.document_id, author


class Justification(StrEnum):
    """Why a product is `not_affected` (the VEX working group's labels)."""

    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    VULNERABLE_CODE_NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
    VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY = (
        "vulnerable_code_cannot_be_controlled_by_adversary"
    )
    INLINE_MITIGATIONS_ALREADY_EXIST = "inline_mitigations_already_exist"


class VexInvalid(Invalid):
    """A document that is not a valid OpenVEX document (or is past a bound): `statement` is
    the index of the statement at fault (None: the document itself) and `field` its field."""

    def __init__(self, reason: str, statement: int | None = None, field: str | None = None) -> None:
        where = "" if statement is None else f"statement {statement}"
        if field:
            where = f"{where}: {field}" if where else field
        super().__init__(
            f"invalid OpenVEX document: {where + ': ' if where else ''}{reason}",
            {
                **({"statement": statement} if statement is not None else {}),
                **({"field": field} if field else {}),
                "reason": reason,
            },
        )
        self.statement = statement
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """What one statement is about within the import's scope: one image (`digest`; None: every
    image of the scope) and one component (`purl`; None: every component)."""

    digest: str | None
    purl: str | None


@dataclass(frozen=True, slots=True)
class VexStatement:
    index: int
    vulnerability: str
    aliases: tuple[str, ...]
    status: TriageStatus
    justification: Justification | None
    statement: str | None  # impact_statement, action_statement or status_notes
    timestamp: datetime | None
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class VexDocument:
    id: str
    author: str
    role: str | None
    timestamp: datetime
    last_updated: datetime | None
    version: int
    statements: tuple[VexStatement, ...]

    @property
    def targets(self) -> int:
        return sum(len(s.targets) for s in self.statements)


# --- reading ------------------------------------------------------------------------------------
def load_document(data: bytes | str) -> Mapping[str, Any]:
    """The JSON object of a document's bytes, within `MAX_DOCUMENT_BYTES`."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise VexInvalid(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise VexInvalid("the document is not UTF-8") from None
    except (ValueError, RecursionError):
        raise VexInvalid("the document is not JSON") from None
    if not isinstance(value, dict):
        raise VexInvalid("the document is not a JSON object")
    return value


def parse_document(data: bytes | str | Mapping[str, Any]) -> VexDocument:
    """Validate an OpenVEX document (bytes, text or parsed JSON) into its statements."""
    doc = data if isinstance(data, Mapping) else load_document(data)
    context = _need(doc, "@context", None, MAX_ID)
    if not context.startswith(CONTEXT_PREFIX):
        raise VexInvalid(f"not an OpenVEX context (expected {CONTEXT})", None, "@context")
    doc_id = _need(doc, "@id", None, MAX_ID)
    author = _need(doc, "author", None, MAX_ID)
    role = _text(doc, "role", None, limit=MAX_ID)
    timestamp = _time(doc, "timestamp", None, required=True)
    assert timestamp is not None
    version = _version(doc.get("version"), None)
    statements = doc.get("statements")
    if not isinstance(statements, list) or not statements:
        raise VexInvalid("a non-empty list of statements is required", None, "statements")
    if len(statements) > MAX_STATEMENTS:
        raise VexInvalid(f"more than {MAX_STATEMENTS} statements", None, "statements")
    parsed: list[VexStatement] = []
    total = 0
    for index, item in enumerate(statements):
        statement = _statement(item, index)
        total += len(statement.targets)
        if total > MAX_TARGETS:
            raise VexInvalid(
                f"the statements name more than {MAX_TARGETS} products", index, "products"
            )
        parsed.append(statement)
    return VexDocument(
        id=doc_id,
        author=author,
        role=role,
        timestamp=timestamp,
        last_updated=_time(doc, "last_updated", None),
        version=version,
        statements=tuple(parsed),
    )


def _statement(item: object, index: int) -> VexStatement:
    if not isinstance(item, dict):
        raise VexInvalid("a statement is a JSON object", index)
    name, aliases = _vulnerability(item.get("vulnerability"), index)
    raw_status = item.get("status")
    try:
        status = TriageStatus(raw_status) if isinstance(raw_status, str) else None
    except ValueError:
        status = None
    if status is None:
        labels = ", ".join(s.value for s in TriageStatus)
        raise VexInvalid(f"one of {labels} is required", index, "status")
    raw_justification = _text(item, "justification", index, limit=64)
    justification: Justification | None = None
    if raw_justification is not None:
        try:
            justification = Justification(raw_justification)
        except ValueError:
            labels = ", ".join(j.value for j in Justification)
            raise VexInvalid(
                f"not a justification label ({labels})", index, "justification"
            ) from None
        if status is not TriageStatus.NOT_AFFECTED:
            raise VexInvalid("only a not_affected statement has one", index, "justification")
    impact = _text(item, "impact_statement", index)
    action = _text(item, "action_statement", index)
    notes = _text(item, "status_notes", index)
    if status is TriageStatus.NOT_AFFECTED:
        if justification is None and not impact:
            raise VexInvalid(
                "not_affected needs a justification or an impact_statement", index, "justification"
            )
        text = impact or notes
    elif status is TriageStatus.AFFECTED:
        if not action:
            raise VexInvalid("affected needs an action_statement", index, "action_statement")
        text = action
    else:
        text = notes
    for field in ("timestamp", "last_updated", "action_statement_timestamp"):
        _time(item, field, index)
    if "version" in item:
        _version(item["version"], index)
    return VexStatement(
        index=index,
        vulnerability=name,
        aliases=aliases,
        status=status,
        justification=justification,
        statement=text or None,
        timestamp=_time(item, "timestamp", index),
        targets=_targets(item.get("products"), index),
    )


def _vulnerability(value: object, index: int) -> tuple[str, tuple[str, ...]]:
    """The vulnerability's name and aliases (v0.2.0: an object; earlier drafts: a string)."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise VexInvalid("an object with a name is required", index, "vulnerability")
    name = _need(value, "name", index, MAX_NAME, "vulnerability.name")
    aliases = value.get("aliases", [])
    if not isinstance(aliases, list) or len(aliases) > 64:
        raise VexInvalid("a list of at most 64 names", index, "vulnerability.aliases")
    for alias in aliases:
        if not isinstance(alias, str) or not _clean(alias) or len(alias) > MAX_NAME:
            raise VexInvalid(
                f"each alias is a name of at most {MAX_NAME} characters",
                index,
                "vulnerability.aliases",
            )
    return name, tuple(dict.fromkeys(a for a in aliases if a != name))


def _targets(products: object, index: int) -> tuple[Target, ...]:
    if products is None:
        return (Target(None, None),)  # the import's scope is the product
    if not isinstance(products, list):
        raise VexInvalid("a list of products", index, "products")
    if len(products) > MAX_PRODUCTS:
        raise VexInvalid(f"more than {MAX_PRODUCTS} products", index, "products")
    if not products:
        return (Target(None, None),)
    found: dict[Target, None] = {}
    for position, product in enumerate(products):
        field = f"products[{position}]"
        identifier, subcomponents = _component(product, index, field, nested=True)
        digest = image_digest(identifier)
        inside: list[str | None] = []
        for n, sub in enumerate(subcomponents):
            where = f"{field}.subcomponents[{n}]"
            inside.append(_purl(_component(sub, index, where)[0], index, where))
        if digest is None:
            # A package as the product: the component itself (or those it names inside it).
            components = inside or [_purl(identifier, index, field)]
        else:
            components = inside or [None]
        for component in components:
            found[Target(digest if digest != "" else None, component)] = None
    return tuple(found)


def _component(
    value: object, index: int, field: str, nested: bool = False
) -> tuple[str, list[object]]:
    """A product's (or subcomponent's) identifier (its `@id`, else `identifiers.purl`; a plain
    string in earlier drafts) and its subcomponents."""
    if isinstance(value, str):
        identifier: object = value
        subcomponents: object = []
    elif isinstance(value, dict):
        identifier = value.get("@id")
        identifiers = value.get("identifiers")
        if identifiers is not None and not isinstance(identifiers, dict):
            raise VexInvalid("identifiers is an object", index, f"{field}.identifiers")
        purl = identifiers.get("purl") if identifiers else None
        if purl is not None and (identifier is None or image_digest(purl) is not None):
            identifier = purl
        subcomponents = value.get("subcomponents", []) if nested else []
        if "subcomponents" in value and not nested:
            raise VexInvalid("a subcomponent has no subcomponents", index, field)
    else:
        raise VexInvalid("a product is an object with an @id", index, field)
    if not isinstance(identifier, str) or not _clean(identifier) or len(identifier) > MAX_PURL:
        raise VexInvalid(
            f"an @id or identifiers.purl of at most {MAX_PURL} characters is required",
            index,
            field,
        )
    if not isinstance(subcomponents, list) or len(subcomponents) > MAX_SUBCOMPONENTS:
        raise VexInvalid(
            f"a list of at most {MAX_SUBCOMPONENTS} subcomponents", index, f"{field}.subcomponents"
        )
    return identifier, subcomponents


def image_digest(identifier: str) -> str | None:
    """The manifest digest an image product names: `sha256:<hex>`, or the version of a
    `pkg:oci` purl; "" for a `pkg:oci` purl without one (every image of the scope); None when
    the identifier is not an image."""
    if identifier.startswith("sha256:"):
        return identifier if _is_sha256(identifier) else None
    if not identifier.startswith("pkg:oci/"):
        return None
    try:
        purl = PackageURL.from_string(identifier)
    except ValueError:
        return None
    version = purl.version or ""
    return version if _is_sha256(version) else ""


def _is_sha256(value: str) -> bool:
    hexpart = value.removeprefix("sha256:")
    return (
        value.startswith("sha256:")
        and len(hexpart) == 64
        and all(c in "0123456789abcdef" for c in hexpart)
    )


def _purl(identifier: str, index: int, field: str) -> str:
    if image_digest(identifier) is not None:
        raise VexInvalid("an image cannot be a component of a product", index, field)
    normal = normal_purl(identifier)
    if normal is None:
        raise VexInvalid(
            "a package URL (pkg:type/name@version) or an image digest is required", index, field
        )
    return identifier


# --- purls ---------------------------------------------------------------------------------------
def normal_purl(value: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """A purl as (everything but its qualifiers, its qualifiers sorted): two purls that differ
    only in the order of their qualifiers compare equal. None when it is not a purl."""
    try:
        purl = PackageURL.from_string(value)
    except ValueError:
        return None
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    base = PackageURL(
        type=purl.type,
        namespace=purl.namespace,
        name=purl.name,
        version=purl.version,
        subpath=purl.subpath,
    ).to_string()
    return base, tuple(sorted((k.lower(), str(v)) for k, v in qualifiers.items()))


def purl_matches(stated: str, component: str) -> bool:
    """Whether a statement's component purl names `component`: the same package URL with the
    qualifiers in any order; a stated purl without some qualifier (arch, distro...) names the
    component whatever its value."""
    if stated == component:
        return True
    left, right = normal_purl(stated), normal_purl(component)
    if left is None or right is None or left[0] != right[0]:
        return False
    return set(left[1]) <= set(right[1])


# --- writing -------------------------------------------------------------------------------------
def image_purl(repository: str, digest: str, registry: str | None = None) -> str:
    """The package URL of an image: `pkg:oci/<last name>@<digest>?repository_url=<registry>/<repo>`
    (the repository URL only when the registry's address is known)."""
    name = repository.rsplit("/", 1)[-1]
    qualifiers = {"repository_url": f"{registry}/{repository}"} if registry else None
    return PackageURL(type="oci", name=name, version=digest, qualifiers=qualifiers).to_string()


@dataclass(frozen=True, slots=True)
class Assertion:
    """One decision to write as a statement."""

    vulnerability: str
    aliases: Sequence[str]
    component_purl: str | None
    status: TriageStatus
    justification: str | None
    statement: str | None
    timestamp: datetime


def export_document(
    doc_id: str,
    author: str,
    timestamp: datetime,
    product: str,
    assertions: Iterable[Assertion],
    version: int = 1,
) -> dict[str, Any]:
    """An OpenVEX document saying, of the image `product` (its purl), what each assertion
    says; it parses back (`parse_document`) into the same decisions."""
    statements = [_written(product, a) for a in assertions]
    return {
        "@context": CONTEXT,
        "@id": doc_id,
        "author": author,
        "timestamp": _iso(timestamp),
        "version": version,
        "tooling": "trustyard",
        "statements": statements,
    }


def _written(product: str, assertion: Assertion) -> dict[str, Any]:
    vulnerability: dict[str, Any] = {"name": assertion.vulnerability}
    aliases = [a for a in dict.fromkeys(assertion.aliases) if a != assertion.vulnerability]
    if aliases:
        vulnerability["aliases"] = aliases
    item: dict[str, Any] = {"@id": product, "identifiers": {"purl": product}}
    if assertion.component_purl:
        item["subcomponents"] = [{"@id": assertion.component_purl}]
    out: dict[str, Any] = {
        "vulnerability": vulnerability,
        "timestamp": _iso(assertion.timestamp),
        "products": [item],
        "status": assertion.status.value,
    }
    text = assertion.statement
    if assertion.status is TriageStatus.NOT_AFFECTED:
        if assertion.justification:
            out["justification"] = assertion.justification
        if text or not assertion.justification:
            out["impact_statement"] = text or "not affected"
    elif assertion.status is TriageStatus.AFFECTED:
        out["action_statement"] = text or "no action given"
    elif text:
        out["status_notes"] = text
    return out


def _iso(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- fields --------------------------------------------------------------------------------------
def _clean(value: str) -> bool:
    return bool(value.strip()) and "\x00" not in value


def _text(
    item: Mapping[str, Any],
    key: str,
    index: int | None,
    *,
    required: bool = False,
    limit: int = MAX_TEXT,
    field: str | None = None,
) -> str | None:
    value = item.get(key)
    name = field or key
    if value is None:
        if required:
            raise VexInvalid("required", index, name)
        return None
    if not isinstance(value, str):
        raise VexInvalid("a string is required", index, name)
    if len(value) > limit:
        raise VexInvalid(f"longer than {limit} characters", index, name)
    if "\x00" in value:
        raise VexInvalid("a NUL character", index, name)
    if required and not value.strip():
        raise VexInvalid("must not be empty", index, name)
    return value


def _need(
    item: Mapping[str, Any], key: str, index: int | None, limit: int, field: str | None = None
) -> str:
    value = _text(item, key, index, required=True, limit=limit, field=field)
    if value is None:  # pragma: no cover - _text refuses it
        raise VexInvalid("required", index, field or key)
    return value


def _time(
    item: Mapping[str, Any], key: str, index: int | None, *, required: bool = False
) -> datetime | None:
    value = _text(item, key, index, required=required, limit=64)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise VexInvalid("an RFC 3339 date and time with its offset is required", index, key)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise VexInvalid("out of range", index, key) from None


def _version(value: object, index: int | None) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        value = int(value)  # early drafts wrote the version as a string
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise VexInvalid("a whole number of at least 1 is required", index, "version")
    return value
