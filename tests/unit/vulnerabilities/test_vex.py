"""OpenVEX documents: what is read from a valid one, what each rule refuses (naming the
statement and the field), that any input is refused only with VexInvalid, and that an export
reads back as the decisions it wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.vulnerabilities.interfaces import TriageStatus
from trustyard.vulnerabilities.vex import (
    MAX_DOCUMENT_BYTES,
    MAX_PRODUCTS,
    MAX_STATEMENTS,
    Assertion,
    Justification,
    Target,
    VexInvalid,
    export_document,
    image_digest,
    image_purl,
    normal_purl,
    parse_document,
    purl_matches,
)

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
IMAGE = f"pkg:oci/app@{DIGEST.replace(':', '%3A')}?repository_url=registry.example/acme/app"
REQUESTS = "pkg:pypi/requests@2.19.0"


def document(*statements: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/1",
        "author": "Security Team",
        "timestamp": "2024-05-01T12:00:00Z",
        "version": 1,
        "statements": list(statements),
        **fields,
    }


def statement(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "vulnerability": {"name": "CVE-2023-32681"},
        "status": "not_affected",
        "justification": "vulnerable_code_not_in_execute_path",
    }
    return {**base, **fields}


def test_a_valid_document_is_read_with_its_statements() -> None:
    parsed = parse_document(
        document(
            statement(
                vulnerability={"name": "CVE-2023-32681", "aliases": ["GHSA-j8r2-6x86-q33q"]},
                products=[{"@id": IMAGE, "subcomponents": [{"@id": REQUESTS}]}],
                impact_statement="proxies are never configured",
            ),
            statement(status="affected", justification=None, action_statement="upgrade to 2.31.0"),
            {"vulnerability": {"name": "CVE-1"}, "status": "fixed", "products": [REQUESTS]},
        )
    )
    assert (parsed.id, parsed.author, parsed.version) == (
        "https://example.com/vex/1",
        "Security Team",
        1,
    )
    assert parsed.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    first, second, third = parsed.statements
    assert first.aliases == ("GHSA-j8r2-6x86-q33q",)
    assert first.justification is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
    assert first.statement == "proxies are never configured"
    assert first.targets == (Target(DIGEST, REQUESTS),)
    assert (second.status, second.statement) == (TriageStatus.AFFECTED, "upgrade to 2.31.0")
    assert second.targets == (Target(None, None),)  # the import's scope is the product
    assert third.targets == (Target(None, REQUESTS),)  # a package product is the component


def test_products_as_digests_plain_strings_and_identifiers() -> None:
    parsed = parse_document(
        document(
            statement(
                products=[
                    DIGEST,
                    {"identifiers": {"purl": f"pkg:oci/app@{OTHER}"}},
                    {"@id": "pkg:oci/app?tag=latest"},  # no digest: every image of the scope
                    {"@id": "pkg:npm/lodash@4.17.20", "subcomponents": [{"@id": REQUESTS}]},
                ]
            ),
            {"vulnerability": "CVE-2", "status": "under_investigation", "version": "2"},
        )
    )
    assert parsed.statements[0].targets == (
        Target(DIGEST, None),
        Target(OTHER, None),
        Target(None, None),
        Target(None, REQUESTS),
    )
    assert parsed.statements[1].vulnerability == "CVE-2"  # an early draft's plain string


@pytest.mark.parametrize(
    ("change", "index", "field"),
    [
        ({"status": "maybe"}, 0, "status"),
        ({"status": None}, 0, "status"),
        ({"justification": None}, 0, "justification"),
        ({"justification": "because"}, 0, "justification"),
        ({"status": "fixed"}, 0, "justification"),  # a justification only for not_affected
        ({"status": "affected", "justification": None}, 0, "action_statement"),
        ({"vulnerability": {}}, 0, "vulnerability.name"),
        ({"vulnerability": {"name": "  "}}, 0, "vulnerability.name"),
        ({"vulnerability": {"name": "x" * 129}}, 0, "vulnerability.name"),
        ({"vulnerability": 7}, 0, "vulnerability"),
        ({"vulnerability": {"name": "C", "aliases": "D"}}, 0, "vulnerability.aliases"),
        ({"products": "pkg:pypi/x@1"}, 0, "products"),
        ({"products": [{"@id": "not a purl"}]}, 0, "products[0]"),
        ({"products": [{"hashes": {}}]}, 0, "products[0]"),
        ({"products": [7]}, 0, "products[0]"),
        (
            {"products": [{"@id": IMAGE, "subcomponents": [{"@id": "nope"}]}]},
            0,
            "products[0].subcomponents[0]",
        ),
        (
            {"products": [{"@id": IMAGE, "subcomponents": [{"@id": DIGEST}]}]},
            0,
            "products[0].subcomponents[0]",
        ),
        ({"products": [{"@id": IMAGE, "subcomponents": "x"}]}, 0, "products[0].subcomponents"),
        ({"timestamp": "yesterday"}, 0, "timestamp"),
        ({"timestamp": "2024-05-01T12:00:00"}, 0, "timestamp"),  # no offset
        ({"version": 0}, 0, "version"),
        ({"impact_statement": "x" * 9000}, 0, "impact_statement"),
        ({"impact_statement": "a\x00b"}, 0, "impact_statement"),
    ],
)
def test_a_bad_statement_is_refused_naming_its_index_and_field(
    change: dict[str, Any], index: int, field: str
) -> None:
    good = statement()
    bad = {k: v for k, v in {**good, **change}.items() if v is not None}
    with pytest.raises(VexInvalid) as refused:
        parse_document(document(good, bad) if index else document(bad))
    assert (refused.value.statement, refused.value.field) == (index, field)
    assert f"statement {index}: {field}" in refused.value.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"@context": "https://example.com/other"}, "@context"),
        ({"@context": None}, "@context"),
        ({"@id": None}, "@id"),
        ({"author": ""}, "author"),
        ({"timestamp": None}, "timestamp"),
        ({"version": None}, "version"),
        ({"version": True}, "version"),
        ({"version": "\uff11"}, "version"),  # a full-width digit
        ({"statements": []}, "statements"),
        ({"statements": {}}, "statements"),
    ],
)
def test_a_bad_document_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    doc = {k: v for k, v in {**document(statement()), **change}.items() if v is not None}
    with pytest.raises(VexInvalid) as refused:
        parse_document(doc)
    assert refused.value.statement is None
    assert refused.value.field == field


def test_bounds() -> None:
    too_many = document(*[statement()] * (MAX_STATEMENTS + 1))
    with pytest.raises(VexInvalid, match="statements"):
        parse_document(too_many)
    wide = document(statement(products=[f"pkg:pypi/p{i}@1" for i in range(MAX_PRODUCTS + 1)]))
    with pytest.raises(VexInvalid, match="products"):
        parse_document(wide)
    padded = json.dumps(document(statement(impact_statement=" " * 10))).encode()
    with pytest.raises(VexInvalid, match="larger than"):
        parse_document(padded + b" " * MAX_DOCUMENT_BYTES)
    for raw in (b"\xff\xfe", b"[" * 100_000, b"[]", b'{"a": 1' + b"9" * 5000 + b"}", b""):
        with pytest.raises(VexInvalid):
            parse_document(raw)


def test_purls_match_with_qualifiers_in_any_order_or_left_out() -> None:
    deb = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
    assert purl_matches("pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=debian-12&arch=amd64", deb)
    assert purl_matches("pkg:deb/debian/openssl@3.0.11-1~deb12u2", deb)
    assert not purl_matches("pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=arm64", deb)
    assert not purl_matches("pkg:deb/debian/openssl@3.0.12", deb)
    assert not purl_matches("nonsense", deb)


def test_image_digests() -> None:
    assert image_digest(DIGEST) == DIGEST
    assert image_digest(image_purl("acme/app", DIGEST, "r.example")) == DIGEST
    assert image_digest("pkg:oci/app") == ""
    assert image_digest(REQUESTS) is None
    assert image_digest("sha256:short") is None


def test_an_export_reads_back_as_the_decisions_it_wrote() -> None:
    product = image_purl("acme/app", DIGEST, "registry.example")
    when = datetime(2024, 6, 1, 8, 30, tzinfo=UTC)
    written = [
        Assertion("CVE-1", ["GHSA-1"], REQUESTS, TriageStatus.NOT_AFFECTED, None, "why", when),
        Assertion(
            "CVE-2",
            [],
            None,
            TriageStatus.NOT_AFFECTED,
            "inline_mitigations_already_exist",
            None,
            when,
        ),
        Assertion("CVE-3", [], REQUESTS, TriageStatus.AFFECTED, None, "upgrade", when),
        Assertion("CVE-4", [], None, TriageStatus.FIXED, None, None, when),
        Assertion("CVE-5", [], None, TriageStatus.UNDER_INVESTIGATION, None, "looking", when),
    ]
    doc = export_document("urn:x:1", "trustyard", when, product, written)
    assert doc["@context"] == "https://openvex.dev/ns/v0.2.0"
    assert doc["statements"][0]["products"][0]["identifiers"]["purl"] == product
    parsed = parse_document(json.dumps(doc))
    read = [
        (s.vulnerability, s.status, s.justification, s.statement, s.targets, s.timestamp)
        for s in parsed.statements
    ]
    assert read == [
        (
            a.vulnerability,
            a.status,
            a.justification,
            a.statement,
            (Target(DIGEST, a.component_purl),),
            when,
        )
        for a in written
    ]
    assert parsed.statements[0].aliases == ("GHSA-1",)


# --- any input -----------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
FIELDS = st.sampled_from(
    [
        "@context",
        "@id",
        "author",
        "timestamp",
        "version",
        "statements",
        "vulnerability",
        "status",
        "justification",
        "products",
        "subcomponents",
        "@id",
        "identifiers",
        "impact_statement",
        "action_statement",
        "aliases",
        "name",
        "purl",
    ]
)
VALUES = st.sampled_from(
    [
        "not_affected",
        "affected",
        "fixed",
        "component_not_present",
        DIGEST,
        IMAGE,
        REQUESTS,
        "pkg:oci/x",
        "pkg:",
        "2024-05-01T12:00:00Z",
        "https://openvex.dev/ns",
        1,
        "1",
        [],
        {},
    ]
)


def mutated() -> st.SearchStrategy[Any]:
    """Valid documents with one value anywhere replaced by a plausible or random one."""

    def mutate(doc: Any, path: list[int], value: Any) -> Any:
        node = doc
        for step in path:
            if isinstance(node, dict) and node:
                key = sorted(node)[step % len(node)]
                if not isinstance(node[key], (dict, list)):
                    node[key] = value
                    return doc
                node = node[key]
            elif isinstance(node, list) and node:
                if not isinstance(node[step % len(node)], (dict, list)):
                    node[step % len(node)] = value
                    return doc
                node = node[step % len(node)]
        if isinstance(node, dict):
            node[str(value)[:20]] = value
        elif isinstance(node, list):
            node.append(value)
        return doc

    base = document(
        statement(products=[{"@id": IMAGE, "subcomponents": [{"@id": REQUESTS}]}]),
        {
            "vulnerability": {"name": "CVE-9", "aliases": ["X"]},
            "status": "affected",
            "action_statement": "a",
        },
    )
    return st.builds(
        lambda path, value: mutate(json.loads(json.dumps(base)), path, value),
        st.lists(st.integers(0, 7), max_size=6),
        VALUES | JSON | FIELDS,
    )


@settings(max_examples=400, deadline=None)
@given(st.one_of(JSON, mutated(), st.binary(max_size=200), st.text(max_size=200)))
def test_any_input_is_read_or_refused_with_invalid(value: Any) -> None:
    try:
        if isinstance(value, (bytes, str)):
            parse_document(value)
        elif isinstance(value, dict):
            parse_document(value)
            parse_document(json.dumps(value))
        else:
            parse_document(json.dumps(value))
    except VexInvalid as refused:
        message = refused.message
    else:
        return
    assert message.startswith("invalid OpenVEX document")


PURL_TEXT = st.text(alphabet=st.sampled_from(list("pkg:/@?#&=%abc.-_ 1\x00é")), max_size=30)


@settings(max_examples=500, deadline=None)
@given(PURL_TEXT.map(lambda s: "pkg:" + s), st.text(max_size=20))
def test_any_purl_text_is_compared_without_an_error(stated: str, other: str) -> None:
    normal_purl(stated)
    image_digest(stated)
    assert purl_matches(stated, stated)
    purl_matches(stated, "pkg:" + other)
    purl_matches("pkg:" + other, stated)
