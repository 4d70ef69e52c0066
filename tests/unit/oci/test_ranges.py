"""`Range` on blob GET (RFC 9110 section 14) and `Content-Range` on upload PATCH."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.errors import DomainError
from trustyard.oci.ranges import ByteRange, RangeNotSatisfiable, parse_content_range, parse_range
from trustyard.registry.errors import ErrorCode, oci_error

PROPERTY = settings(derandomize=True, max_examples=300, deadline=None, database=None)

SIZES = st.integers(0, 300)
POSITIONS = st.one_of(st.integers(0, 400), st.integers(0, 10**19 - 1))


def _slice(data: bytes, header: str) -> bytes | None:
    """What a client gets: None for 416, else the body bytes (whole blob if ignored)."""
    try:
        byte_range = parse_range(header, len(data))
    except RangeNotSatisfiable:
        return None
    if byte_range is None:
        return data
    assert 0 <= byte_range.start <= byte_range.end < len(data)
    assert byte_range.length == byte_range.end - byte_range.start + 1
    return data[byte_range.start : byte_range.end + 1]


@PROPERTY
@given(size=SIZES, first=POSITIONS, last=POSITIONS)
def test_closed_range(size: int, first: int, last: int) -> None:
    data = bytes(i % 251 for i in range(size))
    header = f"bytes={first}-{last}"
    if last < first or first >= size:  # reversed, or no overlap with the blob: 416
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == ByteRange(first, min(last, size - 1))
        assert _slice(data, header) == data[first : last + 1]


@PROPERTY
@given(size=SIZES, last=st.integers(0, 10**18), gap=st.integers(1, 10**18))
def test_a_reversed_range_is_never_the_whole_blob(size: int, last: int, gap: int) -> None:
    """`bytes=500-0` and the like: 416 whatever the blob's size (it was the whole blob)."""
    header = f"bytes={last + gap}-{last}"
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)
    assert _slice(bytes(size), header) is None


@PROPERTY
@given(size=SIZES, first=POSITIONS)
def test_open_range_matches_python_slice(size: int, first: int) -> None:
    data = bytes(i % 251 for i in range(size))
    header = f"bytes={first}-"
    if first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == ByteRange(first, size - 1)
        assert _slice(data, header) == data[first:]


@PROPERTY
@given(size=SIZES, suffix=POSITIONS)
def test_suffix_range_matches_python_slice(size: int, suffix: int) -> None:
    data = bytes(i % 251 for i in range(size))
    header = f"bytes=-{suffix}"
    if suffix == 0 or size == 0:  # nothing to send: 416
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == ByteRange(max(0, size - suffix), size - 1)
        assert _slice(data, header) == data[-suffix:]


@PROPERTY
@given(
    size=SIZES,
    header=st.one_of(
        st.text("bytes=0123456789-, \t", max_size=30),
        st.text(max_size=30),
        st.builds(lambda a, b: f"bytes={a}-{b}", POSITIONS, POSITIONS),
    ),
)
def test_any_header_yields_a_range_inside_the_blob_or_416_or_is_ignored(
    size: int, header: str
) -> None:
    data = bytes(i % 251 for i in range(size))
    body = _slice(data, header)
    assert body is None or body == data or len(body) < size


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=0-9", 10, ByteRange(0, 9)),
        ("bytes=0-100", 10, ByteRange(0, 9)),  # last beyond the end is clamped
        ("bytes=9-", 10, ByteRange(9, 9)),
        ("bytes=-1", 10, ByteRange(9, 9)),
        ("bytes=-10", 10, ByteRange(0, 9)),
        ("bytes=-11", 10, ByteRange(0, 9)),  # longer suffix than the blob: all of it
        ("  bytes=2-3  ", 10, ByteRange(2, 3)),
    ],
)
def test_satisfiable_ranges(header: str, size: int, expected: ByteRange) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=10-", 10),
        ("bytes=10-20", 10),
        ("bytes=-0", 10),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
        ("bytes=500-0", 1000),  # reversed: RFC 9110 says invalid; clients expect 416
        ("bytes=5-2", 10),
        ("bytes=1-0", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=-",
        "bytes=0-1,3-4",  # several ranges: we send the whole blob instead of multipart
        "items=0-1",
        "bytes 0-1",
        "bytes=a-b",
        "bytes=0-1/10",
        "bytes=" + "9" * 20 + "-",  # beyond any blob size we can hold
        "",
    ],
)
def test_headers_that_are_ignored(header: str) -> None:
    assert parse_range(header, 10) is None


# --- Content-Range of upload chunks -----------------------------------------------------------

OFFSETS = st.integers(0, 10**19 - 1)


# The largest end whose total (end + 1) still has the 19 digits a number may have.
LAST_END = 10**19 - 2


@PROPERTY
@given(
    start=st.integers(0, LAST_END),
    extra=st.integers(0, 10**6),
    form=st.sampled_from(
        ["{s}-{e}", "bytes {s}-{e}", "bytes={s}-{e}", "bytes {s}-{e}/*", "{s}-{e}/{t}"]
    ),
)
def test_content_range_forms_clients_send(start: int, extra: int, form: str) -> None:
    end = start + extra
    if end > LAST_END:
        end = start
    header = form.format(s=start, e=end, t=end + 1)
    parsed = parse_content_range(header)
    assert parsed == ByteRange(start, end)
    assert parsed.length == end - start + 1


@PROPERTY
@given(start=OFFSETS, end=OFFSETS)
def test_content_range_end_before_start_is_range_invalid(start: int, end: int) -> None:
    header = f"{start}-{end}"
    if end < start:
        with pytest.raises(DomainError) as caught:
            parse_content_range(header)
        assert oci_error(caught.value).code is ErrorCode.RANGE_INVALID
        assert oci_error(caught.value).status == 416
    else:
        assert parse_content_range(header) == ByteRange(start, end)


@PROPERTY
@given(header=st.one_of(st.text(max_size=40), st.text("bytes =0123456789-/*", max_size=40)))
def test_content_range_parses_or_raises_range_invalid(header: str) -> None:
    parsed: ByteRange | None = None
    failure: DomainError | None = None
    try:
        parsed = parse_content_range(header)
    except DomainError as error:
        failure = error
    if failure is not None:
        assert oci_error(failure).code is ErrorCode.RANGE_INVALID
    else:
        assert parsed is not None
        assert 0 <= parsed.start <= parsed.end


@pytest.mark.parametrize(
    "header", ["", "-", "0-", "-5", "bytes 0-", "a-b", "0-1-2", "0 - 1", "0-1/x"]
)
def test_malformed_content_range_is_range_invalid(header: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_content_range(header)
    assert oci_error(caught.value).code is ErrorCode.RANGE_INVALID
