"""The /v2 edge's one mapping of domain errors onto OCI error codes (registry/errors.py)."""

from __future__ import annotations

import json

import pytest

from trustyard import errors
from trustyard.auth.accounts import LastOwner
from trustyard.auth.jwt_tokens import InvalidToken
from trustyard.registry.errors import ErrorCode, answered, error_body, oci_error, oci_headers

# What each error the domains raise answers on the wire: the code and the status.
CASES: list[tuple[errors.DomainError, ErrorCode, int]] = [
    (errors.NameUnknown("team/app"), ErrorCode.NAME_UNKNOWN, 404),
    (errors.ManifestUnknown("latest"), ErrorCode.MANIFEST_UNKNOWN, 404),
    (errors.BlobUnknown("sha256:" + "a" * 64), ErrorCode.BLOB_UNKNOWN, 404),
    (errors.BlobUploadUnknown("u", "gone"), ErrorCode.BLOB_UPLOAD_UNKNOWN, 404),
    (errors.NameInvalid("bad name"), ErrorCode.NAME_INVALID, 400),
    (errors.TagInvalid("bad tag"), ErrorCode.TAG_INVALID, 400),
    (errors.DigestInvalid("bad digest"), ErrorCode.DIGEST_INVALID, 400),
    (errors.DigestMismatch("other bytes"), ErrorCode.DIGEST_INVALID, 400),
    (errors.SizeInvalid("too long"), ErrorCode.SIZE_INVALID, 400),
    (errors.RangeInvalid("bad range"), ErrorCode.RANGE_INVALID, 416),
    (errors.RangeMismatch("not there", 3), ErrorCode.RANGE_INVALID, 416),
    (errors.ManifestInvalid("bad manifest"), ErrorCode.MANIFEST_INVALID, 400),
    (errors.ManifestTooLarge("too large"), ErrorCode.MANIFEST_INVALID, 413),
    (errors.ManifestBlobUnknown("sha256:x", "push it"), ErrorCode.MANIFEST_BLOB_UNKNOWN, 400),
    (errors.Denied("no"), ErrorCode.DENIED, 403),
    (errors.Unauthenticated("wrong password"), ErrorCode.UNAUTHORIZED, 401),
    (errors.Throttled("slow down", 7), ErrorCode.TOOMANYREQUESTS, 429),
    (errors.Unavailable("no directory"), ErrorCode.UNAVAILABLE, 503),
]


@pytest.mark.parametrize(("error", "code", "status"), CASES, ids=lambda c: type(c).__name__)
def test_each_domain_error_has_its_code_status_and_message(
    error: errors.DomainError, code: ErrorCode, status: int
) -> None:
    answer = oci_error(error)
    assert answered(error)
    assert (answer.code, answer.status) == (code, status)
    assert answer.message == error.message
    assert answer.detail == error.detail


def test_detail_reaches_the_envelope_as_it_is() -> None:
    body = json.loads(error_body([oci_error(errors.RangeMismatch("starts at 5", 3))]))
    assert body == {
        "errors": [{"code": "RANGE_INVALID", "message": "starts at 5", "detail": {"offset": 3}}]
    }
    no_detail = json.loads(error_body([oci_error(errors.DigestInvalid("bad"))]))
    assert no_detail == {"errors": [{"code": "DIGEST_INVALID", "message": "bad"}]}


def test_a_subclass_answers_as_its_nearest_listed_parent() -> None:
    class ChunkTooEarly(errors.RangeMismatch):
        pass

    answer = oci_error(ChunkTooEarly("too early"))
    assert (answer.code, answer.status) == (ErrorCode.RANGE_INVALID, 416)


@pytest.mark.parametrize(
    "error",
    [
        errors.NotFound("user", "alice"),
        errors.Invalid("a rule"),
        errors.Conflict("team", "devs"),
        LastOwner("the last owner"),
        InvalidToken("forged"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_account_errors_have_no_v2_answer_and_reveal_nothing(error: errors.DomainError) -> None:
    answer = oci_error(error)
    assert not answered(error)
    assert (answer.code, answer.status, answer.message) == (
        ErrorCode.UNKNOWN,
        500,
        "internal error",
    )
    assert answer.detail is None


def test_only_the_login_back_off_adds_a_header() -> None:
    throttled = errors.Throttled("retry in 7 s", 7)
    assert oci_headers(throttled) == [(b"retry-after", b"7")]
    assert oci_error(throttled).detail == {"retryAfter": 7}
    assert oci_headers(errors.Unavailable("down")) == []
    assert oci_headers(errors.NameUnknown("a")) == []
