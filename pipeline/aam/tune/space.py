"""The search space of `anon-store tune`: loss-weight ranges, architectures, epochs, and samples."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import ConfigError

SEARCHED_WEIGHTS: tuple[str, ...] = ("w_lc", "w_b", "w_spread", "w_swap", "w_motion", "w_class")
"""The loss weights a sample draws (w_t stays at its default: L_T's scale is the reference)."""
ARCHS: tuple[str, ...] = ("mlp", "attention")
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
_DIGITS = 40
"""Digit positions scrambled per dimension: enough for any index below 2**40."""


@dataclass(frozen=True)
class WeightRange:
    """A loss weight drawn log-uniformly in [low, high], or exactly 0 with probability ``zero``.

    The zero mass matters for the extension weights: 0 is the reference method, and a log scale
    never reaches it.
    """

    low: float
    high: float
    zero: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high or not math.isfinite(self.high):
            raise ConfigError(f"weight range needs 0 < low <= high, got [{self.low}, {self.high}]")
        if not 0 <= self.zero < 1:
            raise ConfigError(f"weight range zero probability must be in [0, 1), got {self.zero}")

    def value(self, u: float) -> float:
        """The weight at quantile ``u`` in [0, 1), rounded to 3 significant digits (readable
        tables; the search gains nothing from finer steps)."""
        if u < self.zero:
            return 0.0
        t = (u - self.zero) / (1.0 - self.zero)
        w = self.low * (self.high / self.low) ** t
        return float(f"{w:.3g}")


@dataclass(frozen=True)
class SearchSpace:
    """What the seeded samples draw from (the presets are trials too, whatever the space).

    Ranges (README "Choosing the adapter's loss weights": the default benchmark's sweep): w_lc
    from the recommended 1 up to the paper's 100 and below; w_b around the 1-10 that worked;
    w_spread and w_swap over the decades where they helped (30-1000, 10-30), each 0 a quarter of
    the time; w_motion (which helped normal clips but hurt static ones) 0 half of the time;
    w_class (same-action swap invariance, the newest extension) 1-100, 0 half of the time.
    """

    w_lc: WeightRange = field(default_factory=lambda: WeightRange(0.3, 100.0))
    w_b: WeightRange = field(default_factory=lambda: WeightRange(0.3, 30.0))
    w_spread: WeightRange = field(default_factory=lambda: WeightRange(1.0, 1000.0, zero=0.25))
    w_swap: WeightRange = field(default_factory=lambda: WeightRange(1.0, 100.0, zero=0.25))
    w_motion: WeightRange = field(default_factory=lambda: WeightRange(0.1, 10.0, zero=0.5))
    w_class: WeightRange = field(default_factory=lambda: WeightRange(1.0, 100.0, zero=0.5))
    archs: tuple[str, ...] = ARCHS
    """Adapter architectures drawn with equal probability."""
    epochs: tuple[int, ...] = (30, 60, 120)
    """Epoch counts drawn with equal probability."""

    def __post_init__(self) -> None:
        if not self.archs or not set(self.archs) <= set(ARCHS):
            raise ConfigError(f"archs must be some of {ARCHS}, got {list(self.archs)}")
        if not self.epochs or min(self.epochs) < 1:
            raise ConfigError(f"epochs must be positive integers, got {list(self.epochs)}")

    @property
    def dims(self) -> int:
        return len(SEARCHED_WEIGHTS) + 2

    def settings(self, u: np.ndarray) -> dict[str, float | int | str]:
        """A point of the unit cube [dims] -> arch, epochs and the searched weights."""
        out: dict[str, float | int | str] = {
            "arch": self.archs[min(int(u[-2] * len(self.archs)), len(self.archs) - 1)],
            "epochs": int(self.epochs[min(int(u[-1] * len(self.epochs)), len(self.epochs) - 1)]),
        }
        for i, name in enumerate(SEARCHED_WEIGHTS):
            out[name] = getattr(self, name).value(float(u[i]))
        return out


def scrambled_halton(n: int, dims: int, seed: int) -> np.ndarray:
    """The first ``n`` points [n, dims] of a seeded, digit-scrambled Halton sequence.

    A low-discrepancy sequence rather than a Latin hypercube: it covers the cube as evenly for a
    few points, and point i does not depend on n, so a search grown from 10 to 20 trials keeps
    its first 10 (and their trained adapters). Each dimension's digits go through a seeded
    random permutation per digit position (keeping 0 -> 0, so the digits past the index's stay
    0), which removes plain Halton's correlation between high bases; then a seeded shift mod 1.
    """
    if dims > len(_PRIMES):
        raise ConfigError(f"at most {len(_PRIMES)} search dimensions, got {dims}")
    points = np.zeros((n, dims))
    for j in range(dims):
        base = _PRIMES[j]
        rng = np.random.default_rng([int(seed), j, 0x7475_6E65])
        perms = [np.concatenate([[0], 1 + rng.permutation(base - 1)]) for _ in range(_DIGITS)]
        shift = rng.random()
        for i in range(n):
            index, value, scale, k = i + 1, 0.0, 1.0 / base, 0
            while index:
                index, digit = divmod(index, base)
                value += perms[k][digit] * scale
                scale /= base
                k += 1
            points[i, j] = (value + shift) % 1.0
    return points
