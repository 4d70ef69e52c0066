"""Retry delays: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """After failed attempt n (1-based) wait between half and all of base * 2**(n-1)
    seconds, never more than `cap`. The random half spreads the retries of jobs that failed
    together (say, while a dependency was down) instead of sending them back at once."""

    base: float = 10.0
    cap: float = 3600.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # min() before the power would overflow: 2**1100 is no float.
        exponent = min(attempt - 1, 64)
        ceiling = min(self.cap, self.base * 2.0**exponent)
        spread = (rng or random).random()  # jitter, not secrecy
        return ceiling / 2 + spread * ceiling / 2
