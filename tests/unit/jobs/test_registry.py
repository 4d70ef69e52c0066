"""Handlers by kind: kinds follow one grammar and are registered once."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.jobs.interfaces import InvalidJob, JobContext
from trustyard.jobs.registry import HandlerRegistry, check_kind


def handler(job: JobContext) -> None:
    return None


@pytest.mark.parametrize("kind", ["jobs.prune", "scan.image", "a", "webhooks.deliver-v2", "x_1.y"])
def test_lowercase_dotted_words_are_kinds(kind: str) -> None:
    assert check_kind(kind) == kind


@pytest.mark.parametrize("kind", ["", "Scan", "scan.", ".scan", "scan..image", "1scan", "a b"])
def test_other_names_are_not(kind: str) -> None:
    with pytest.raises(InvalidJob):
        check_kind(kind)


@given(st.text(max_size=80))
def test_check_kind_accepts_exactly_the_grammar(text: str) -> None:
    expected = len(text) <= 64 and re.fullmatch(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*", text)
    try:
        check_kind(text)
    except InvalidJob:
        assert not expected
    else:
        assert expected


def test_a_kind_has_one_handler() -> None:
    handlers = HandlerRegistry()
    handlers.register("scan.image", handler)
    with pytest.raises(InvalidJob, match="already registered"):
        handlers.register("scan.image", handler)
    assert handlers.kinds() == {"scan.image"}
    assert handlers.get("scan.image") is handler
    assert handlers.get("mirror.pull") is None
