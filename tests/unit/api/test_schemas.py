"""api/schemas.py's page helpers: a page from `limit + 1` rows read in key order, and a page of
only the rows a caller may see, read in batches, against the whole list filtered and cut."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.api.schemas import Page, keyed_page, visible_page

PROPERTY = settings(derandomize=True, max_examples=300, deadline=None, database=None)


def _itself(name: str) -> str:
    return name


def expected(names: list[str], visible: set[str], limit: int, after: str | None) -> Page[str]:
    """The page as the whole list filtered and cut would give it."""
    chosen = [n for n in names if n in visible and (after is None or n.encode() > after.encode())]
    shown = chosen[:limit]
    return Page(items=shown, next=shown[-1] if len(chosen) > limit else None)


class Rows:
    """Sorted names read `count` at a time after a key, as a keyset query reads them."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.reads: list[tuple[str | None, int]] = []

    def __call__(self, after: str | None, count: int) -> list[str]:
        self.reads.append((after, count))
        past = [n for n in self.names if after is None or n.encode() > after.encode()]
        return past[:count]


def test_a_keyed_page_says_next_only_when_the_extra_row_came() -> None:
    assert keyed_page(["a", "b", "c"], _itself, 2) == Page(items=["a", "b"], next="b")
    assert keyed_page(["a", "b"], _itself, 2) == Page(items=["a", "b"], next=None)
    assert keyed_page([], _itself, 2) == Page(items=[], next=None)


NAMES = st.lists(st.text(alphabet="ab-._0", min_size=1, max_size=4), unique=True, max_size=250)


@PROPERTY
@given(NAMES, st.data(), st.integers(min_value=1, max_value=120))
def test_a_visible_page_is_the_filtered_list_cut_whatever_the_batches(
    names: list[str], data: st.DataObject, limit: int
) -> None:
    names = sorted(names, key=str.encode)
    visible = set(data.draw(st.lists(st.sampled_from(names), unique=True))) if names else set()
    after = data.draw(st.none() | st.sampled_from(names)) if names else None
    rows = Rows(names)
    page = visible_page(rows, _itself, visible.__contains__, limit, after)
    assert page == expected(names, visible, limit, after)
    # each read starts past the one before, so no row is read twice
    starts = [start for start, _ in rows.reads[1:]]
    assert all(s is not None for s in starts)
    assert starts == sorted(starts, key=lambda s: (s or "").encode())


@pytest.mark.parametrize("limit", [1, 3, 99, 100, 150])
def test_every_visible_row_is_on_exactly_one_page(limit: int) -> None:
    names = sorted((f"n{i:04d}" for i in range(700)), key=str.encode)
    visible = {n for i, n in enumerate(names) if i % 7 in (0, 3)}
    seen: list[str] = []
    after = None
    while True:
        page = visible_page(Rows(names), _itself, visible.__contains__, limit, after)
        seen += page.items
        assert len(page.items) <= limit
        if page.next is None:
            break
        assert page.items, "a next page is announced only when this one holds something"
        after = page.next
    assert seen == sorted(visible)
