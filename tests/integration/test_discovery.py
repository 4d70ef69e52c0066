"""OCI conformance, content discovery: tag lists, the catalog and the referrers API."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.integration.oci_helpers import (
    API_VERSION,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    brief,
    descriptor,
    encode,
    index_manifest,
    push_artifact,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)
from tests.support.server import TrustyardServer

pytestmark = pytest.mark.integration

LINK_RE = re.compile(r'^<([^>]+)>; rel="next"$')
TAGS = ["v10", "v2", "V1", "latest", "1.0", "_private", "a-b", "a.b", "a_b", "Z", "z", "0"]


def _next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    found = LINK_RE.match(link)
    assert found is not None, link
    return found.group(1)


def _tag_all(client: httpx.Client, repo: str, tags: list[str]) -> None:
    image = push_image(client, repo, tags[0])
    for tag in tags[1:]:
        assert put_manifest(client, repo, tag, image.manifest).status_code == 201


# --- tags ----------------------------------------------------------------------------------------
def test_tags_are_listed_in_lexical_order(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, TAGS)
    response = client.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["docker-distribution-api-version"] == API_VERSION
    assert response.json() == {"name": repo, "tags": sorted(TAGS)}
    assert "link" not in response.headers


@pytest.mark.parametrize("n", [1, 3, 4, 5, 11])
def test_tag_pagination_follows_link_headers_to_the_end(
    client: httpx.Client, repo: str, n: int
) -> None:
    _tag_all(client, repo, TAGS)
    expected = sorted(TAGS)
    seen: list[str] = []
    url: str | None = f"/v2/{repo}/tags/list?n={n}"
    pages = 0
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, brief(response)
        page = response.json()["tags"]
        assert response.json()["name"] == repo
        url = _next_link(response)
        if url is not None:
            # A page that announces more must be full, and the Link carries n and the last tag.
            assert len(page) == n
            assert url.endswith(f"/v2/{repo}/tags/list?n={n}&last={page[-1]}")
        else:
            assert 0 < len(page) <= n
        seen += page
        pages += 1
        assert pages <= len(TAGS)
    assert seen == expected
    assert pages == -(-len(TAGS) // n)


def test_tag_list_with_last_starts_after_it(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, TAGS)
    expected = sorted(TAGS)
    response = client.get(f"/v2/{repo}/tags/list", params={"last": "a-b"})
    assert response.json()["tags"] == [t for t in expected if t > "a-b"]
    response = client.get(f"/v2/{repo}/tags/list", params={"last": "a-b", "n": 2})
    assert response.json()["tags"] == [t for t in expected if t > "a-b"][:2]
    assert _next_link(response) is not None
    # `last` need not be an existing tag.
    response = client.get(f"/v2/{repo}/tags/list", params={"last": "w"})
    assert response.json()["tags"] == [t for t in expected if t > "w"]
    response = client.get(f"/v2/{repo}/tags/list", params={"last": "zzz", "n": 5})
    assert response.json()["tags"] == []
    assert "link" not in response.headers


def test_tag_list_with_n_larger_than_the_list_has_no_link(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, ["b", "a"])
    for n in (2, 3, 1000):
        response = client.get(f"/v2/{repo}/tags/list", params={"n": n})
        assert response.json()["tags"] == ["a", "b"]
        assert "link" not in response.headers


def test_tag_list_with_n_zero_is_empty_without_link(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, ["a", "b"])
    response = client.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": []}
    assert "link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10"])
def test_invalid_n_is_400(client: httpx.Client, repo: str, n: str) -> None:
    _tag_all(client, repo, ["a"])
    response = client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert_error(response, 400, "PAGINATION_NUMBER_INVALID")


# `str.isdigit` is true for these, `int()` fails on the first two (a 500 before) and takes the
# others (silently accepted before): only ASCII digits are a number.
UNICODE_DIGITS = ["\u00b2", "1\u00b2", "\u0663", "\u0661\u0660", "\uff15", "\u09e8"]


@pytest.mark.parametrize("n", UNICODE_DIGITS)
def test_n_in_non_ascii_digits_is_400_on_tags_and_catalog(
    client: httpx.Client, repo: str, n: str
) -> None:
    _tag_all(client, repo, ["a"])
    for path in (f"/v2/{repo}/tags/list", "/v2/_catalog"):
        assert_error(client.get(path, params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


def test_n_with_thousands_of_digits_is_the_largest_page(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, ["a", "b"])
    for n in ("9" * 5000, "0" * 5000 + "1"):  # int() refuses over 4300 digits: was a 500
        response = client.get(f"/v2/{repo}/tags/list", params={"n": n})
        assert response.status_code == 200, brief(response)
        expected = ["a", "b"] if n.startswith("9") else ["a"]
        assert response.json()["tags"] == expected
        assert client.get("/v2/_catalog", params={"n": n}).status_code == 200


@pytest.fixture(scope="module")
def listed_repo(server: TrustyardServer) -> str:
    repo = f"test/n-fuzz-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=60) as http:
        _tag_all(http, repo, ["a", "b", "c"])
    return repo


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(n=st.text(max_size=12) | st.from_regex(r"[0-9]{1,30}", fullmatch=True))
@example(n="\u00b2")
@example(n="9" * 5000)
def test_any_n_is_a_page_or_a_400_never_a_500(
    server: TrustyardServer, listed_repo: str, n: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for path in (f"/v2/{listed_repo}/tags/list", "/v2/_catalog"):
            response = http.get(path, params={"n": n})
            if n == "" or (n.isascii() and n.isdigit()):
                assert response.status_code == 200, brief(response)
            else:
                assert_error(response, 400, "PAGINATION_NUMBER_INVALID")


def test_tags_of_unknown_repository_is_name_unknown(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/tags/list?n=0"), 404, "NAME_UNKNOWN")


def test_repository_without_tags_lists_an_empty_list(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"only a blob")
    response = client.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": []}


# --- catalog -------------------------------------------------------------------------------------
def test_catalog_pages_through_repositories(client: httpx.Client, repo: str) -> None:
    names = [f"{repo}/{suffix}" for suffix in ("c", "a", "b")]
    for name in names:
        push_blob(client, name, b"catalog")
    first = client.get("/v2/_catalog", params={"n": 2, "last": repo})
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"repositories": [f"{repo}/a", f"{repo}/b"]}
    link = _next_link(first)
    assert link is not None
    assert link.endswith("/v2/_catalog?n=2&last=" + f"{repo}/b".replace("/", "%2F"))
    second = client.get(link)
    assert second.status_code == 200
    assert second.json()["repositories"][0] == f"{repo}/c"


def test_catalog_walk_is_sorted_and_complete(client: httpx.Client, repo: str) -> None:
    names = sorted(f"{repo}/{i}" for i in range(3))
    for name in names:
        push_blob(client, name, b"catalog")
    everything = client.get("/v2/_catalog").json()["repositories"]
    assert everything == sorted(everything)
    assert set(names) <= set(everything)
    walked: list[str] = []
    url: str | None = "/v2/_catalog?n=25"
    while url is not None:
        response = client.get(url)
        page = response.json()["repositories"]
        url = _next_link(response)
        if url is not None:
            assert len(page) == 25
        walked += page
        assert len(walked) <= len(everything) + 50  # bounded even if the server loops
    assert walked == everything


def test_catalog_with_n_zero_and_invalid_n(client: httpx.Client) -> None:
    response = client.get("/v2/_catalog", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"repositories": []}
    assert "link" not in response.headers
    assert_error(client.get("/v2/_catalog", params={"n": "x"}), 400, "PAGINATION_NUMBER_INVALID")


# --- referrers ------------------------------------------------------------------------------------
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


def _referrers(
    client: httpx.Client, repo: str, digest: str, artifact_type: str | None = None
) -> httpx.Response:
    params = {"artifactType": artifact_type} if artifact_type is not None else None
    response = client.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert response.status_code == 200, brief(response)
    assert response.headers["content-type"] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response


def _listed(response: httpx.Response) -> dict[str, dict[str, Any]]:
    return {item["digest"]: item for item in response.json()["manifests"]}


def test_referrers_list_artifacts_with_their_type_and_annotations(
    client: httpx.Client, repo: str
) -> None:
    image = push_image(client, repo, "v1")
    subject = descriptor(OCI_MANIFEST, image.manifest)
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "x": "y"}
    sbom, sbom_body, pushed = push_artifact(client, repo, subject, SBOM, annotations=annotations)
    assert pushed.status_code == 201, brief(pushed)
    assert pushed.headers["oci-subject"] == image.digest
    signature, signature_body, pushed = push_artifact(client, repo, subject, SIGNATURE)
    assert pushed.headers["oci-subject"] == image.digest

    listed = _listed(_referrers(client, repo, image.digest))
    assert listed == {
        sbom: {
            "mediaType": OCI_MANIFEST,
            "digest": sbom,
            "size": len(sbom_body),
            "artifactType": SBOM,
            "annotations": annotations,
        },
        signature: {
            "mediaType": OCI_MANIFEST,
            "digest": signature,
            "size": len(signature_body),
            "artifactType": SIGNATURE,
        },
    }


def test_referrers_filter_by_artifact_type(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    subject = descriptor(OCI_MANIFEST, image.manifest)
    sbom, _, _ = push_artifact(client, repo, subject, SBOM)
    push_artifact(client, repo, subject, SIGNATURE)

    filtered = _referrers(client, repo, image.digest, SBOM)
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert list(_listed(filtered)) == [sbom]

    none = _referrers(client, repo, image.digest, "application/vnd.example.none")
    assert none.headers["oci-filters-applied"] == "artifactType"
    assert none.json()["manifests"] == []

    unfiltered = _referrers(client, repo, image.digest)
    assert "oci-filters-applied" not in unfiltered.headers
    assert len(unfiltered.json()["manifests"]) == 2


def test_subject_that_does_not_exist_yet_is_accepted(client: httpx.Client, repo: str) -> None:
    later = push_image(client, f"{repo}/staging")  # built elsewhere, not yet in `repo`
    subject = descriptor(OCI_MANIFEST, later.manifest)
    artifact, _, pushed = push_artifact(client, repo, subject, SBOM)
    assert pushed.status_code == 201, brief(pushed)
    assert pushed.headers["oci-subject"] == later.digest
    assert list(_listed(_referrers(client, repo, later.digest))) == [artifact]
    assert_error(client.get(f"/v2/{repo}/manifests/{later.digest}"), 404, "MANIFEST_UNKNOWN")


def test_referrers_without_matches_is_an_empty_index(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    response = _referrers(client, repo, image.digest)
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    # Not even the repository exists: still 200, never 404.
    other = _referrers(client, f"{repo}/void", sha256(b"nothing"))
    assert other.json()["manifests"] == []


def test_referrers_with_malformed_digest_is_400(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "v1")
    for bad in ("latest", "sha256:1234", "md5:" + "0" * 32):
        response = client.get(f"/v2/{repo}/referrers/{bad}")
        assert_error(response, 400, "DIGEST_INVALID")


def test_artifact_type_defaults_to_the_config_media_type(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    subject = descriptor(OCI_MANIFEST, image.manifest)
    config_type = "application/vnd.example.config.v1+json"
    custom, _, _ = push_artifact(client, repo, subject, None, config_media_type=config_type)
    empty, _, _ = push_artifact(client, repo, subject, None)
    listed = _listed(_referrers(client, repo, image.digest))
    assert listed[custom]["artifactType"] == config_type
    assert listed[empty]["artifactType"] == OCI_EMPTY
    assert list(_listed(_referrers(client, repo, image.digest, config_type))) == [custom]


def test_index_referrer_has_no_artifact_type_unless_it_declares_one(
    client: httpx.Client, repo: str
) -> None:
    image = push_image(client, repo, "v1")
    child = push_image(client, repo)
    subject = descriptor(OCI_MANIFEST, image.manifest)
    bare = encode(index_manifest([descriptor(OCI_MANIFEST, child.manifest)], subject=subject))
    typed = encode(
        index_manifest(
            [descriptor(OCI_MANIFEST, child.manifest)],
            subject=subject,
            artifact_type=SBOM,
            annotations={"k": "v"},
        )
    )
    for body in (bare, typed):
        response = put_manifest(client, repo, sha256(body), body, OCI_INDEX)
        assert response.status_code == 201, brief(response)
        assert response.headers["oci-subject"] == image.digest
    listed = _listed(_referrers(client, repo, image.digest))
    assert listed[sha256(bare)] == {
        "mediaType": OCI_INDEX,
        "digest": sha256(bare),
        "size": len(bare),
    }
    assert listed[sha256(typed)] == {
        "mediaType": OCI_INDEX,
        "digest": sha256(typed),
        "size": len(typed),
        "artifactType": SBOM,
        "annotations": {"k": "v"},
    }


def test_referrers_are_scoped_to_the_repository(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    other = f"{repo}/other"
    push_image(client, other, "v1")
    subject = descriptor(OCI_MANIFEST, image.manifest)
    push_artifact(client, other, subject, SBOM)
    assert _referrers(client, repo, image.digest).json()["manifests"] == []
    assert len(_referrers(client, other, image.digest).json()["manifests"]) == 1


def test_manifest_without_subject_has_no_oci_subject_header(
    client: httpx.Client, repo: str
) -> None:
    image = push_image(client, repo)
    response = put_manifest(client, repo, "again", image.manifest)
    assert response.status_code == 201
    assert "oci-subject" not in response.headers
