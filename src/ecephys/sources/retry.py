"""Retries with exponential back-off and full jitter, for :class:`TransientSourceError` only.

The sleep and random functions are fields, so tests pass a fake sleep that records the delays
instead of waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ecephys.errors import TransientSourceError

__all__ = ["RetryPolicy"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _uniform() -> float:
    """A draw from [0, 1) of the process's generator: pickled by name, so that copies of a policy
    sent to other processes (Dask workers) draw their own jitter, not the same sequence."""
    return random.random()


@dataclass(frozen=True)
class RetryPolicy:
    """How many failed attempts in a row to allow, and how long to wait between them.

    ``retries`` failed attempts in a row are retried (so ``retries + 1`` attempts at most);
    before retry *n* (1, 2, …) the wait is drawn uniformly from
    ``[0, min(cap, base · 2**(n-1))]`` seconds ("full jitter"), so many clients that failed
    together do not come back together.
    """

    retries: int = 5
    base: float = 0.5  # seconds
    cap: float = 30.0  # seconds
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=_uniform, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries={self.retries}: expected an integer ≥ 0")
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"base={self.base}, cap={self.cap}: expected seconds ≥ 0")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (≥ 1) failed attempts in a row."""
        ceiling = min(self.cap, self.base * 2.0 ** max(failures - 1, 0))
        return ceiling * self.random()

    def wait(self, failures: int, error: TransientSourceError) -> None:
        """Sleep before the next attempt, or re-raise ``error`` when the budget is spent."""
        if failures > self.retries:
            raise TransientSourceError(
                f"{error} — gave up after {failures} attempts; try again later, or pass more retries",
                url=error.url,
            ) from error
        seconds = self.delay(failures)
        log.info("retry %d of %d in %.2f s after: %s", failures, self.retries, seconds, error)
        self.sleep(seconds)

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it returns, retrying only :class:`TransientSourceError`."""
        failures = 0
        while True:
            try:
                return fn()
            except TransientSourceError as error:
                failures += 1
                self.wait(failures, error)
