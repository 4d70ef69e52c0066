"""The patterns of `matches` rules, compiled once with a bound on their size.

A pattern's run time is bounded when it runs (the `regex` module's timeout); its size is not:
`regex` writes a counted repeat out in full when it compiles (`a{1000000}` is a million
steps, some 280 MB, and `((a{1000}){1000}){1000}` a billion), so a pattern is measured before
it is compiled. `steps(text)` reads the pattern's structure (groups, classes, escapes and
counted repeats `{m}`, `{m,}`, `{m,n}`, `{,n}`) and answers how many steps its compiled form
has at most: an atom is one step, a group the sum of its contents, and a counted repeat
multiplies the atom before it by its least count (the rest of a range is a loop, not written
out). Where the reading is unsure (a `{` that only looks like a repeat, nested sets) it counts
more, never less.
"""

from __future__ import annotations

import re

import regex  # type: ignore[import-untyped]  # no stubs; typed by use here

MAX_PATTERN_STEPS = 10_000  # one pattern (about 1.5 MB compiled at most)
MAX_LIST_STEPS = 50_000  # all the patterns of one rule list
_REPEAT = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")
_BIG = 10**12  # any count past this is already far past every limit


class PatternInvalid(ValueError):
    """A pattern that does not compile, or would compile too large."""


def steps(text: str) -> int:
    """The most steps `text` compiles to (see the module's docstring)."""
    groups: list[list[int]] = [[0, 0]]  # per open group: [sum so far, the last atom's steps]
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char == "\\":
            _atom(groups, 1)
            i += 2
        elif char == "[":
            i = _class_end(text, i)
            _atom(groups, 1)
        elif char == "(":
            groups.append([0, 0])
            i += 1
        elif char == ")":
            if len(groups) > 1:
                inner = groups.pop()[0]
                _atom(groups, max(inner, 1))
            i += 1
        elif char == "{" and (repeat := _REPEAT.match(text, i)):
            least = int(repeat.group(1) or 0) if len(repeat.group(1)) < 13 else _BIG
            total, last = groups[-1]  # the atom before grows to `least` copies of itself
            grown = min(last * max(least, 1), _BIG)
            groups[-1] = [min(total - last + grown, _BIG), grown]
            i = repeat.end()
        else:
            if char not in "*+?|^$":
                _atom(groups, 1)
            i += 1
    while len(groups) > 1:  # unclosed: compile refuses it, count it anyway
        inner = groups.pop()[0]
        _atom(groups, inner)
    return groups[0][0]


def _atom(groups: list[list[int]], size: int) -> None:
    group = groups[-1]
    group[0] = min(group[0] + size, _BIG)
    group[1] = size


def _class_end(text: str, start: int) -> int:
    """The index after the set opening at `start` (`[^]a-z\\]]`: a `]` first is a member)."""
    i = start + 1
    if text[i : i + 1] == "^":
        i += 1
    if text[i : i + 1] == "]":
        i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "]":
            return i + 1
        else:
            i += 1
    return len(text)


def compile_pattern(text: str, budget: int = MAX_PATTERN_STEPS) -> regex.Pattern[str]:
    """`text` compiled, or PatternInvalid saying why: it does not compile, or it would take
    more than `budget` steps (at most MAX_PATTERN_STEPS)."""
    size = steps(text)
    limit = min(budget, MAX_PATTERN_STEPS)
    if size > limit:
        raise PatternInvalid(
            f"repeats too much: it would compile to more than {limit} steps (a counted "
            "repeat such as {1000} is written out in full; use a range such as {0,1000} or +)"
        )
    try:
        return regex.compile(text)
    except (regex.error, ValueError, OverflowError, RecursionError, IndexError) as error:
        raise PatternInvalid(f"is not a regular expression: {error}") from None
