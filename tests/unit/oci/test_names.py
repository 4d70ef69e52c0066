"""Repository names and tags, against regular expressions written from the distribution spec."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.errors import DomainError
from trustyard.oci.names import check_name, check_tag, is_valid_name, is_valid_tag
from trustyard.registry.errors import ErrorCode, oci_error

PROPERTY = settings(derandomize=True, max_examples=100, deadline=None, database=None)

# distribution-spec, "Pulling manifests": <name> MUST match
#   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
# and <reference> as a tag MUST be at most 128 characters and match
#   [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
SPEC_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
SPEC_NAME = re.compile(SPEC_COMPONENT + r"(?:/" + SPEC_COMPONENT + r")*", re.ASCII)
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)
NAME_LIMIT = 255

ALNUM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])


def spec_name(text: str) -> bool:
    return len(text) <= NAME_LIMIT and SPEC_NAME.fullmatch(text) is not None


def spec_tag(text: str) -> bool:
    return SPEC_TAG.fullmatch(text) is not None


@st.composite
def components(draw: st.DrawFn) -> str:
    parts = [draw(ALNUM)]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(SEPARATOR), draw(ALNUM)]
    return "".join(parts)


VALID_NAMES = st.lists(components(), min_size=1, max_size=5).map("/".join)
VALID_TAGS = st.from_regex(SPEC_TAG, fullmatch=True)


@st.composite
def mutated_names(draw: st.DrawFn) -> str:
    """A valid name broken in one of the ways clients get wrong."""
    name = draw(VALID_NAMES)
    position = draw(st.integers(0, len(name)))
    how = draw(
        st.sampled_from(
            ["upper", "dotdot", "empty-middle", "leading", "trailing", "triple", "char"]
        )
    )
    if how == "upper":
        return name[:position] + draw(st.sampled_from("ABZ")) + name[position:]
    if how == "dotdot":
        return name[:position] + ".." + name[position:]
    if how == "empty-middle":
        return name[:position] + "//" + name[position:]
    if how == "leading":
        return draw(st.sampled_from(["/", ".", "-", "_"])) + name
    if how == "trailing":
        return name + draw(st.sampled_from(["/", ".", "-", "_", "\n"]))
    if how == "triple":
        return name[:position] + "___" + name[position:]
    return (
        name[:position]
        + draw(st.sampled_from([" ", ":", "@", "é", "\x00", "\\"]))
        + name[position:]
    )


@PROPERTY
@given(name=VALID_NAMES)
def test_generated_spec_names_are_accepted(name: str) -> None:
    if len(name) <= NAME_LIMIT:
        assert is_valid_name(name)
        assert check_name(name) == name


@PROPERTY
@given(name=mutated_names())
def test_mutated_names_are_refused(name: str) -> None:
    assert not spec_name(name)  # the mutation really broke the grammar
    assert not is_valid_name(name)
    with pytest.raises(DomainError) as caught:
        check_name(name)
    assert oci_error(caught.value).code is ErrorCode.NAME_INVALID
    assert oci_error(caught.value).status == 400


@PROPERTY
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.text("abc019._-/A", max_size=24),
        st.from_regex(SPEC_NAME, fullmatch=True),
        mutated_names(),
    )
)
def test_name_validation_agrees_with_the_spec_expression(text: str) -> None:
    assert is_valid_name(text) == spec_name(text)


@PROPERTY
@given(tag=VALID_TAGS)
def test_generated_spec_tags_are_accepted(tag: str) -> None:
    assert is_valid_tag(tag)
    assert check_tag(tag) == tag


@PROPERTY
@given(text=st.one_of(st.text(max_size=140), st.text("aZ9_.-:+/ \n", max_size=140), VALID_TAGS))
def test_tag_validation_agrees_with_the_spec_expression(text: str) -> None:
    assert is_valid_tag(text) == spec_tag(text)


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "library/ubuntu",
        "a/b/c/d/e/f",
        "my-org/my.app_v2",
        "a__b",
        "a---b",
        "0/1",
        "a" * NAME_LIMIT,
    ],
)
def test_names_clients_use_are_valid(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Library/ubuntu",
        "a/../b",
        "../a",
        "a/./b",
        "/a",
        "a/",
        "a//b",
        "a..b",
        "a___b",
        "a-",
        "-a",
        ".a",
        "a b",
        "a\n",
        "a:tag",
        "a@sha256",
        "a" * (NAME_LIMIT + 1),
    ],
)
def test_names_outside_the_grammar_are_name_invalid(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(DomainError) as caught:
        check_name(name)
    assert oci_error(caught.value).code is ErrorCode.NAME_INVALID


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_x", "A-b_c.d", "0", "t" * 128])
def test_tags_clients_use_are_valid(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize(
    "tag", ["", ".hidden", "-x", "t" * 129, "a/b", "a:b", "a b", "latest\n", "sha256:abc", "é"]
)
def test_tags_outside_the_grammar_are_tag_invalid(tag: str) -> None:
    with pytest.raises(DomainError) as caught:
        check_tag(tag)
    assert oci_error(caught.value).code is ErrorCode.TAG_INVALID
    assert oci_error(caught.value).status == 400
