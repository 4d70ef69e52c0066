"""registry/listing.py's helpers: the `n` and `last` query values of the catalog and tag
listings, the `Link` to the next page, and the catalog of only the repositories a caller may
pull, walked page by page on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine

from tests.support.databases import migrated_engine
from trustyard.auth.authorize import Action, Authorizer, Resource, Subject, open_policy
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.interfaces import Page
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import HashStates, UploadService
from trustyard.db.engine import write_tx
from trustyard.errors import NameInvalid, TagInvalid
from trustyard.kit.asgi import Scope
from trustyard.oci.names import check_name, check_tag, is_valid_name, is_valid_tag
from trustyard.registry.context import RegistryContext
from trustyard.registry.errors import ErrorCode, OciError
from trustyard.registry.http import Request
from trustyard.registry.listing import MAX_PAGE, _cursor, _link, _page_size, _visible_catalog
from trustyard.storage.filesystem import FilesystemDriver

PROPERTY = settings(derandomize=True, max_examples=400, deadline=None, database=None)
LINK = re.compile(r'<(?P<url>[^>]*)>; rel="next"')


async def _never(*_: object) -> dict[str, object]:
    raise AssertionError("no body is read")


def request(**params: str) -> Request:
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "headers": [],
        "query_string": urlencode(params).encode("ascii"),
    }
    return Request(scope, _never, 1.0)


def context(engine: Engine, root: Path, authorize: Authorizer = open_policy) -> RegistryContext:
    store = ContentStore()
    driver = FilesystemDriver(root)
    return RegistryContext(
        engine=engine,
        store=store,
        uploads=UploadService(store, driver, HashStates()),
        manifests=ManifestService(store, StoreHotReads(engine, store)),
        driver=driver,
        authorize=authorize,
        url_prefix="https://registry.example",
    )


# --- n ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "size"),
    [("0", 0), ("1", 1), ("007", 7), ("10000", MAX_PAGE), ("10001", MAX_PAGE), ("0" * 50, 0)],
)
def test_n_is_a_page_size_capped_at_max_page(raw: str, size: int) -> None:
    assert _page_size(request(n=raw)) == size


def test_no_n_or_an_empty_one_means_no_limit() -> None:
    assert _page_size(request()) is None
    assert _page_size(request(n="")) is None


def test_a_number_too_long_for_int_is_max_page_not_a_failure() -> None:
    # Python refuses int() of more than 4300 digits: such an n must not become a 500.
    assert _page_size(request(n="9" * 5000)) == MAX_PAGE
    assert _page_size(request(n="0" * 5000 + "42")) == 42


@pytest.mark.parametrize("raw", ["-1", "+5", " 5", "5 ", "1e3", "0x10", "²", "٣", "五", "1.0"])
def test_anything_but_ascii_digits_is_pagination_number_invalid(raw: str) -> None:
    with pytest.raises(OciError) as refused:
        _page_size(request(n=raw))
    assert refused.value.code is ErrorCode.PAGINATION_NUMBER_INVALID
    assert refused.value.detail == {"n": raw[:40]}


@PROPERTY
@given(st.text(alphabet="0123456789", min_size=1, max_size=60))
def test_any_ascii_digits_are_their_value_up_to_max_page(raw: str) -> None:
    assert _page_size(request(n=raw)) == min(int(raw), MAX_PAGE)


@PROPERTY
@given(st.text(min_size=1, max_size=60))
def test_any_n_is_a_size_within_bounds_or_refused(raw: str) -> None:
    if not (raw.isascii() and raw.isdigit()):
        with pytest.raises(OciError) as refused:
            _page_size(request(n=raw))
        assert refused.value.code is ErrorCode.PAGINATION_NUMBER_INVALID
        assert len(str(refused.value.detail["n"])) <= 40
        return
    size = _page_size(request(n=raw))
    assert size is not None
    assert 0 <= size <= MAX_PAGE


# --- last ---------------------------------------------------------------------------------


def test_no_last_or_an_empty_one_means_from_the_start() -> None:
    assert _cursor(request(), check_tag) is None
    assert _cursor(request(last=""), check_tag) is None


def test_a_proper_last_is_kept_as_given() -> None:
    assert _cursor(request(last="v1.2_rc-3"), check_tag) == "v1.2_rc-3"
    assert _cursor(request(last="acme/app"), check_name) == "acme/app"


@pytest.mark.parametrize("last", ["a\x00b", ".hidden", "-x", "a" * 129, "x y", "tag/with"])
def test_a_last_that_is_no_tag_is_refused_as_tag_invalid(last: str) -> None:
    with pytest.raises(TagInvalid):
        _cursor(request(last=last), check_tag)


@pytest.mark.parametrize("last", ["Acme/app", "acme//app", "/acme", "acme/app/", "a\x00"])
def test_a_last_that_is_no_repository_name_is_refused_as_name_invalid(last: str) -> None:
    with pytest.raises(NameInvalid):
        _cursor(request(last=last), check_name)


@PROPERTY
@given(st.text(max_size=200))
def test_any_last_that_reaches_a_query_is_a_proper_tag(last: str) -> None:
    try:
        found = _cursor(request(last=last), check_tag)
    except TagInvalid:
        assert not is_valid_tag(last)
    else:
        assert found == (last or None)
        assert found is None or (is_valid_tag(found) and "\x00" not in found)


@PROPERTY
@given(st.text(max_size=200))
def test_any_last_that_reaches_the_catalog_is_a_proper_name(last: str) -> None:
    try:
        found = _cursor(request(last=last), check_name)
    except NameInvalid:
        assert not is_valid_name(last)
    else:
        assert found == (last or None)


# --- Link ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> RegistryContext:
    root = tmp_path_factory.mktemp("bare")
    return context(create_engine("sqlite://"), root)  # _link reads no database


def test_no_link_without_a_next_page_a_limit_or_items(bare: RegistryContext) -> None:
    assert _link(bare, "/v2/_catalog", 2, Page(["a", "b"], False)) == []
    assert _link(bare, "/v2/_catalog", None, Page(["a", "b"], True)) == []
    assert _link(bare, "/v2/_catalog", 2, Page([], True)) == []


def test_the_link_asks_for_the_same_size_after_the_last_item(bare: RegistryContext) -> None:
    [(name, value)] = _link(bare, "/v2/_catalog", 2, Page(["acme/a", "acme/b"], True))
    assert name == b"link"
    assert value == b'<https://registry.example/v2/_catalog?n=2&last=acme%2Fb>; rel="next"'


@PROPERTY
@given(
    st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=3),
    st.integers(min_value=1, max_value=MAX_PAGE),
)
def test_the_link_names_the_last_item_exactly_whatever_it_holds(
    bare: RegistryContext, items: list[str], limit: int
) -> None:
    [(_, value)] = _link(bare, "/v2/acme/app/tags/list", limit, Page(items, True))
    found = LINK.fullmatch(value.decode("ascii"))
    assert found is not None
    url = urlsplit(found["url"])
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "registry.example",
        "/v2/acme/app/tags/list",
    )
    assert parse_qs(url.query, keep_blank_values=True) == {"n": [str(limit)], "last": [items[-1]]}


# --- the catalog a caller may see ---------------------------------------------------------

NAMES = sorted(
    [f"acme/app-{i:03d}" for i in range(130)]
    + [f"globex/svc-{i:03d}" for i in range(120)]
    + ["a/b", "a-b/c", "a/b-c", "a.b/c", "a_b/c"]  # byte order: '-' < '.' < '/' < '_'
)


def may_pull(subject: Subject, action: Action, resource: Resource) -> bool:
    """Every repository but globex's, of which only every third (by number)."""
    assert action is Action.PULL
    assert resource.kind == "repository"
    name = resource.name
    return not name.startswith("globex/") or int(name[-3:]) % 3 == 0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def catalog(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryContext]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        ctx = context(engine, tmp_path_factory.mktemp("blobs"), may_pull)
        with write_tx(engine) as conn:
            for name in NAMES:
                ctx.store.ensure_repository(conn, name)
        yield ctx


VISIBLE = sorted(
    (n for n in NAMES if may_pull(Subject(None), Action.PULL, Resource("repository", n))),
    key=str.encode,
)


def walk(ctx: RegistryContext, limit: int | None) -> list[Page]:
    pages, last = [], None
    while True:
        page = _visible_catalog(ctx, Subject(None), limit, last)
        pages.append(page)
        if not page.more:
            return pages
        assert page.items, "a page with more after it is never empty"
        last = page.items[-1]


def test_the_visible_catalog_counts_175_names() -> None:
    assert len(VISIBLE) == 175  # the page sizes below are chosen for this count


@pytest.mark.parametrize("limit", [1, 7, 25, 50, 99, 100, 101, 160, 175, 500])
def test_pages_of_the_visible_catalog_hold_every_visible_name_once_in_byte_order(
    catalog: RegistryContext, limit: int
) -> None:
    pages = walk(catalog, limit)
    assert all(len(page.items) <= limit for page in pages)
    assert all(len(page.items) == limit for page in pages[:-1])
    # a next page is announced only when it holds something (175 names: 7, 25 and 175 divide)
    assert pages[-1].items
    assert [name for page in pages for name in page.items] == VISIBLE


def test_without_a_limit_the_visible_catalog_is_one_page(catalog: RegistryContext) -> None:
    assert walk(catalog, None) == [Page(VISIBLE, False)]


def test_a_page_starts_after_its_last_even_a_name_the_caller_may_not_see(
    catalog: RegistryContext,
) -> None:
    hidden = "globex/svc-001"
    assert hidden in NAMES
    assert hidden not in VISIBLE
    page = _visible_catalog(catalog, Subject(None), 3, hidden)
    assert page == Page(["globex/svc-003", "globex/svc-006", "globex/svc-009"], True)
    assert _visible_catalog(catalog, Subject(None), 3, "globex/svc-117") == Page([], False)
