"""Retry delays: doubling from the base, capped, with a random half for jitter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.jobs.backoff import RetryPolicy

bases = st.floats(min_value=0, max_value=3600, allow_nan=False)
caps = st.floats(min_value=0, max_value=7 * 86400, allow_nan=False)
attempts = st.integers(min_value=1, max_value=10_000)


@given(base=bases, cap=caps, attempt=attempts, seed=st.integers())
def test_a_delay_lies_between_half_and_all_of_the_capped_doubling(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    delay = RetryPolicy(base, cap).delay(attempt, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling
    assert delay <= cap


@given(base=bases, cap=caps, attempt=attempts)
def test_ceilings_never_shrink_as_attempts_grow(base: float, cap: float, attempt: int) -> None:
    class Top(random.Random):
        def random(self) -> float:
            return 1.0

    policy = RetryPolicy(base, cap)
    assert policy.delay(attempt, Top()) <= policy.delay(attempt + 1, Top())


def test_the_first_retries_double() -> None:
    class Top(random.Random):
        def random(self) -> float:
            return 1.0

    policy = RetryPolicy(base=10, cap=3600)
    assert [policy.delay(n, Top()) for n in range(1, 11)] == [
        10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600,
    ]  # fmt: skip


def test_jitter_spreads_jobs_that_failed_together() -> None:
    policy = RetryPolicy(base=60, cap=3600)
    rng = random.Random(7)
    delays = {round(policy.delay(3, rng), 6) for _ in range(50)}
    assert len(delays) == 50


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().delay(0)
