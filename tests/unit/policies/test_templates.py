"""policies/templates.py: every code of a tag template rendered at a known time, what is
refused when the policy is saved, and a rendered tag too long refusing its promotion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.oci.names import is_valid_tag
from trustyard.policies.interfaces import PolicyInvalid, PromotionRefused
from trustyard.policies.templates import check_template, render

DIGEST = "sha256:0123456789abcdef" + "0" * 48
# Monday 7 December 2026, 22:05:09.000123 UTC: day 341 of the year, week 49
AT = datetime(2026, 12, 7, 22, 5, 9, 123, tzinfo=UTC)


@pytest.mark.parametrize(
    ("template", "rendered"),
    [("%n", "1.2"), ("%h", "0123456789ab"), ("%n-%h", "1.2-0123456789ab"),
     ("%A", "Monday"), ("%a", "Mon"), ("%w", "1"), ("%d", "07"), ("%B", "December"),
     ("%b", "Dec"), ("%m", "12"), ("%Y", "2026"), ("%y", "26"), ("%H", "22"), ("%I", "10"),
     ("%p", "PM"), ("%M", "05"), ("%S", "09"), ("%f", "000123"), ("%Z", "UTC"), ("%j", "341"),
     ("%W", "49"), ("release-%n.%Y%m%d", "release-1.2.20261207"), ("prod", "prod"),
     ("v%n_%H%M%S", "v1.2_220509")],
)  # fmt: skip
def test_codes(template: str, rendered: str) -> None:
    assert check_template(template) == template
    assert render(template, "1.2", DIGEST, AT) == rendered


def test_the_date_codes_agree_with_strftime_in_utc() -> None:
    template = "%A_%a_%w_%d_%B_%b_%m_%Y_%y_%H_%I_%p_%M_%S_%f_%Z_%j_%W"
    for moment in (
        AT,
        datetime(2027, 1, 3, 0, 0, tzinfo=UTC),
        datetime(2024, 2, 29, 12, tzinfo=UTC),
    ):
        assert render(template, "t", DIGEST, moment) == moment.strftime(template)


def test_the_time_is_read_in_utc() -> None:
    local = AT.astimezone(timezone(timedelta(hours=5)))
    assert render("%H%Z", "t", DIGEST, local) == "22UTC"


def test_by_digest_the_source_tag_is_the_short_digest() -> None:
    assert render("%n", None, DIGEST, AT) == "0123456789ab"
    assert render("%n-%h", None, DIGEST, AT) == "0123456789ab-0123456789ab"


@pytest.mark.parametrize(
    ("template", "message"),
    [("", "a tag template is a non-empty string"),
     ("%q", "%q is not a template code (known: %% %A %B"),
     ("%n%", "a '%' at the end is not a template code"),
     ("%z", "%z is not a template code"),
     ("%%n", "'%' cannot be part of a tag"),
     ("v:%n", "':' cannot be part of a tag (letters, digits, '.', '_', '-')"),
     ("%n/prod", "'/' cannot be part of a tag"),
     ("a b", "' ' cannot be part of a tag"),
     ("-%n", "a tag cannot start with '.' or '-'"),
     (".%n", "a tag cannot start with '.' or '-'"),
     ("x" * 120 + "%h", "renders longer than a tag's 128 characters"),
     ("x" * 257, "longer than 256 characters")],
)  # fmt: skip
def test_refused_when_saved(template: str, message: str) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        check_template(template)
    assert refused.value.where == "tagTemplate"
    assert message in refused.value.reason


@pytest.mark.parametrize("template", [None, 7, ["%n"]])
def test_a_template_is_a_string(template: object) -> None:
    with pytest.raises(PolicyInvalid, match="a tag template is a non-empty string"):
        check_template(template)


def test_a_rendered_tag_too_long_refuses_the_promotion() -> None:
    check_template("%n-promoted")
    with pytest.raises(PromotionRefused) as refused:
        render("%n-promoted", "t" * 120, DIGEST, AT)
    assert "is not a valid tag" in refused.value.message
    assert "at most 128 characters" in refused.value.message


_TAGS = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,40}", fullmatch=True)
_PIECES = st.sampled_from(
    ["%n", "%h", "%%", "%A", "%a", "%w", "%d", "%B", "%b", "%m", "%Y", "%y", "%H", "%I",
     "%p", "%M", "%S", "%f", "%Z", "%j", "%W", "-", ".", "_", "v", "rc", "1"]
)  # fmt: skip


@given(st.lists(_PIECES, min_size=1, max_size=8).map("".join), _TAGS | st.none(), st.datetimes())
def test_a_saved_template_renders_a_valid_tag_or_refuses_the_promotion(
    template: str, tag: str | None, when: datetime
) -> None:
    try:
        check_template(template)
    except PolicyInvalid:
        return
    try:
        rendered = render(template, tag, DIGEST, when.replace(tzinfo=UTC))
    except PromotionRefused:
        return
    assert is_valid_tag(rendered)
