"""The compact component list of a scan: what the policy engine reads of an image's BOMs,
stored next to them when the scan succeeds so that a policy run never decodes whole BOMs.

Each component of every platform's squashed BOM, once (an index's platforms share most of
theirs), as `(ecosystem, name, version, licences, purl)`, the licences being the identifiers
of the component's SPDX expression. Stored as a MessagePack array of arrays, uncompressed:
about 55 bytes a component, and a typed decode of a repository's worth (300,000 components)
takes about 0.15 s where decompressing and decoding the BOMs took a second
(bench/policy_eval.py).

- `compact(items)` -> bytes, from `(ecosystem, name, version, licence expression, purl)`;
- `compact_boms(data)` -> bytes, from stored BOM JSON (scans stored before the list existed,
  and callers that hand the store only packed BOMs);
- `read_compact(data)` -> the component tuples (a malformed list reads as none);
- `decode_boms(data)`: the BOM JSON read for the five fields only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import msgspec

# (ecosystem, name, version, licences, purl)
ComponentTuple = tuple[str, str, str, tuple[str, ...], str]

_TOKENS = re.compile(r"[()\s]+")
_OPERATORS = frozenset({"AND", "OR"})
MAX_EXPRESSION = 4096  # characters of a licence expression read


def license_ids(expression: object) -> tuple[str, ...]:
    """The licence identifiers of an SPDX expression (`MIT OR (Apache-2.0 AND BSD-3-Clause)`
    -> MIT, Apache-2.0, BSD-3-Clause; an exception after WITH is no licence)."""
    if not isinstance(expression, str) or not expression:
        return ()
    return _license_ids(expression[:MAX_EXPRESSION])


@lru_cache(maxsize=4096)  # images repeat a few expressions over and over
def _license_ids(expression: str) -> tuple[str, ...]:
    found: list[str] = []
    skip = False
    for token in _TOKENS.split(expression):
        if not token:
            continue
        if skip:
            skip = False
        elif token.upper() == "WITH":
            skip = True
        elif token.upper() not in _OPERATORS and token not in found:
            found.append(token)
    return tuple(found)


_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder(list[ComponentTuple])


def compact(items: Iterable[tuple[str, str, str, str | None, str]]) -> bytes:
    """The stored list of `(ecosystem, name, version, licence expression, purl)` items, each
    distinct component once, in their first order."""
    seen: dict[ComponentTuple, None] = {}
    for ecosystem, name, version, expression, purl in items:
        seen.setdefault((ecosystem, name, version, license_ids(expression), purl))
    return _ENCODE.encode(list(seen))


def read_compact(data: bytes) -> list[ComponentTuple]:
    """The component tuples of a stored list; a malformed one reads as none (a policy run
    never fails on what a scan stored)."""
    try:
        return _DECODE.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


class _Component(msgspec.Struct, gc=False):
    """What policies read of a BOM component (scanning.model.Component.to_json writes these
    as strings); every other field is skipped unread."""

    ecosystem: str = ""
    name: str = ""
    version: str = ""
    purl: str = ""
    licenses: str | None = None


class _Bom(msgspec.Struct, gc=False):
    components: list[_Component] = []


# Typed decoding of a stored BOM list: only the fields above become Python objects (the
# locations, detectors, layer lists... are skipped in C), about 8x faster than json.loads of
# the whole document.
_DECODE_BOMS = msgspec.json.Decoder(list[_Bom])


def decode_boms(data: bytes) -> list[_Bom]:
    """The BOM list of a scan as stored (JSON); a malformed one (a field of another type
    than the scanner writes) reads as no BOM."""
    try:
        return _DECODE_BOMS.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


def compact_boms(data: bytes) -> bytes:
    """The stored list made from BOM JSON (not compressed)."""
    return compact(
        (item.ecosystem, item.name, item.version, item.licenses, item.purl)
        for bom in decode_boms(data)
        for item in bom.components
    )
