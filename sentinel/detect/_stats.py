"""Binomial and Poisson tail probabilities for the window detectors (scipy's cephes routines).

The ``scipy.special`` functions are exact in the far tails too: the lower Poisson tail
is computed directly, not as ``1 − upper`` (which rounds to 0 below ~1e-16), and a
scalar call costs well under a microsecond.
"""

from __future__ import annotations

from scipy.special import bdtrc, pdtr, pdtrc

__all__ = ["binom_sf", "poisson_cdf", "poisson_sf"]


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p).

    >>> round(binom_sf(1, 1, 0.3), 6)
    0.3
    >>> round(binom_sf(2, 3, 0.5), 6)
    0.5
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(bdtrc(k - 1, n, p))  # bdtrc(j, n, p) = P(X > j)


def poisson_sf(k: int, lam: float) -> float:
    """P(X ≥ k) for X ~ Poisson(lam).

    >>> import math
    >>> round(poisson_sf(1, 2.0), 6) == round(1 - math.exp(-2.0), 6)
    True
    """
    if k <= 0:
        return 1.0
    if lam <= 0.0:
        return 0.0
    return float(pdtrc(k - 1, lam))  # pdtrc(j, lam) = P(X > j)


def poisson_cdf(k: int, lam: float) -> float:
    """P(X ≤ k) for X ~ Poisson(lam).

    >>> import math
    >>> round(poisson_cdf(0, 3.0), 6) == round(math.exp(-3.0), 6)
    True
    >>> 0.0 < poisson_cdf(5, 150.0) < 1e-50  # a deep lower tail is not rounded to 0
    True
    """
    if k < 0:
        return 0.0
    if lam <= 0.0:
        return 1.0
    return float(pdtr(k, lam))
