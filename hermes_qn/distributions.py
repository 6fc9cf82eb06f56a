"""Service-time distribution shapes for the event sampler.

A shape fixes everything about a distribution except its mean: the network
supplies the mean (a class's demand at a station) when the sampler draws.
Every shape here is a scale family, so ``sample(rng, mean, size)`` is
``mean`` times a unit-mean draw, and the squared coefficient of variation
(:attr:`~Distribution.scv`, variance over squared mean) is a property of the
shape alone. The closed forms that depend on the service distribution
(Pollaczek-Khinchine for FCFS queues) read the same ``scv``, so one object
feeds both the closed form and the sampler.

==================  =================  ======================================
shape               scv                draw with mean ``m``
==================  =================  ======================================
Exponential()       1                  exponential, scale ``m``
Deterministic()     0                  always ``m``
Erlang(k)           1/k                gamma, shape ``k``, scale ``m/k``
Gamma(scv)          scv                gamma, shape ``1/scv``, scale ``m*scv``
Lognormal(scv)      scv                lognormal, ``sigma**2 = log(1+scv)``
HyperExponential    scv (> 1)          two exponential branches, balanced means
Empirical(values)   of the values      resample the values, rescaled to ``m``
==================  =================  ======================================

Examples
--------
>>> import numpy as np
>>> from hermes_qn.distributions import Erlang
>>> x = Erlang(4).sample(np.random.default_rng(0), 2.0, 200_000)
>>> round(float(x.mean()), 1), round(float(x.var() / x.mean() ** 2), 2)
(2.0, 0.25)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ValidationError

__all__ = [
    "Distribution",
    "Deterministic",
    "Empirical",
    "Erlang",
    "Exponential",
    "Gamma",
    "HyperExponential",
    "Lognormal",
]


def _check_mean(mean: float | np.ndarray) -> np.ndarray:
    arr = np.asarray(mean, dtype=float)
    if not np.all(np.isfinite(arr) & (arr >= 0)):
        bad = float(arr[~(np.isfinite(arr) & (arr >= 0))].flat[0])
        raise ValidationError(f"sample: mean got {bad!r}; valid: finite numbers >= 0 (seconds)")
    return arr


def _check_scv(owner: str, scv: float, *, low: float, valid: str) -> float:
    if isinstance(scv, bool) or not isinstance(scv, (int, float, np.integer, np.floating)) \
            or not math.isfinite(scv) or scv <= low:
        raise ValidationError(f"{owner}.scv: got {scv!r}; valid: {valid}")
    return float(scv)


class Distribution:
    """Base of the service-time shapes: a distribution known up to its mean.

    Subclasses are frozen dataclasses; they define ``scv`` (squared
    coefficient of variation, variance / mean**2) and ``_unit``, a draw of
    ``size`` unit-mean values.
    """

    #: Squared coefficient of variation, variance / mean**2 (a field or a
    #: property of each subclass).
    scv: float

    def variance(self, mean: float) -> float:
        """Variance of the distribution with the given mean, in seconds**2."""
        return self.scv * mean * mean

    def second_moment(self, mean: float) -> float:
        """``E[S**2] = mean**2 * (1 + scv)``, in seconds**2 (the Pollaczek-Khinchine input)."""
        return (1.0 + self.scv) * mean * mean

    def sample(self, rng, mean: float | np.ndarray, size: int | tuple[int, ...] | None = None
               ) -> np.ndarray:
        """Draw service times with the given mean.

        Parameters
        ----------
        rng : numpy.random.Generator or seed
            Passed through :func:`numpy.random.default_rng`.
        mean : float or array
            Mean service time in seconds, >= 0; an array broadcasts against
            ``size``.
        size : int or tuple of int, optional
            Output shape; default the shape of ``mean``.

        Returns
        -------
        ndarray of float
            Service times in seconds (the unit of ``mean``).
        """
        rng = np.random.default_rng(rng)
        mean = _check_mean(mean)
        if size is None:
            size = mean.shape
        return mean * self._unit(rng, size)

    def _unit(self, rng: np.random.Generator, size) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Exponential(Distribution):
    """Exponential service (scv 1): the memoryless case product-form results assume."""

    @property
    def scv(self) -> float:
        return 1.0

    def _unit(self, rng, size):
        return rng.standard_exponential(size)


@dataclass(frozen=True)
class Deterministic(Distribution):
    """Constant service equal to the mean (scv 0), e.g. a fixed-length prefill."""

    @property
    def scv(self) -> float:
        return 0.0

    def _unit(self, rng, size):
        return np.ones(size)


@dataclass(frozen=True)
class Erlang(Distribution):
    """Sum of ``k`` exponential phases (scv ``1/k``).

    Parameters
    ----------
    k : int
        Number of phases, >= 1 (``k=1`` is exponential).
    """

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValidationError(f"Erlang.k: got {self.k!r}; valid: an integer >= 1 "
                                  f"(number of phases)")

    @property
    def scv(self) -> float:
        return 1.0 / self.k

    def _unit(self, rng, size):
        return rng.gamma(self.k, 1.0 / self.k, size)


@dataclass(frozen=True)
class Gamma(Distribution):
    """Gamma service with a given scv (shape ``1/scv``).

    Parameters
    ----------
    scv : float
        Squared coefficient of variation, > 0 (use :class:`Deterministic` for 0).
    """

    scv: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "scv", _check_scv(
            "Gamma", self.scv, low=0.0, valid="a finite number > 0 (use Deterministic() for 0)"))

    def _unit(self, rng, size):
        return rng.gamma(1.0 / self.scv, self.scv, size)


@dataclass(frozen=True)
class Lognormal(Distribution):
    """Lognormal service with a given scv (``sigma**2 = log(1 + scv)``).

    Parameters
    ----------
    scv : float
        Squared coefficient of variation, > 0.
    """

    scv: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "scv", _check_scv(
            "Lognormal", self.scv, low=0.0, valid="a finite number > 0 (use Deterministic() for 0)"))

    def _unit(self, rng, size):
        sigma2 = math.log1p(self.scv)
        return rng.lognormal(-0.5 * sigma2, math.sqrt(sigma2), size)


@dataclass(frozen=True)
class HyperExponential(Distribution):
    """Two exponential branches with balanced means (scv > 1): bursty service.

    Branch ``i`` is taken with probability ``p_i`` and has mean
    ``mean / (2 p_i)``, so each branch carries half the mean;
    ``p_1 = (1 + sqrt((scv - 1) / (scv + 1))) / 2``.

    Parameters
    ----------
    scv : float
        Squared coefficient of variation, > 1 (use :class:`Exponential` for 1).

    References
    ----------
    1. W. Whitt, "Approximating a point process by a renewal process, I: two
       basic methods", Operations Research 30(1), 1982 (balanced-means H2).
    """

    scv: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "scv", _check_scv(
            "HyperExponential", self.scv, low=1.0,
            valid="a finite number > 1 (use Exponential() for 1, Erlang or Gamma below 1)"))

    @property
    def probabilities(self) -> tuple[float, float]:
        """Branch probabilities ``(p_1, p_2)``."""
        p1 = 0.5 * (1.0 + math.sqrt((self.scv - 1.0) / (self.scv + 1.0)))
        return p1, 1.0 - p1

    def _unit(self, rng, size):
        p1, p2 = self.probabilities
        branch_mean = np.where(rng.random(size) < p1, 0.5 / p1, 0.5 / p2)
        return branch_mean * rng.standard_exponential(size)


@dataclass(frozen=True)
class Empirical(Distribution):
    """Resample observed service times, rescaled to the requested mean.

    The shape keeps the values' relative spread: a draw with mean ``m`` is
    a value picked uniformly at random times ``m / mean(values)``.

    Parameters
    ----------
    values : sequence of float
        Observed times (any unit; only ratios matter), finite, >= 0, with a
        positive mean.
    """

    values: tuple[float, ...]
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            arr = np.asarray(self.values, dtype=float).ravel()
        except (TypeError, ValueError):
            raise ValidationError(f"Empirical.values: got {self.values!r}; valid: a sequence of "
                                  f"finite numbers >= 0 with a positive mean") from None
        if arr.size == 0 or not np.all(np.isfinite(arr) & (arr >= 0)) or arr.sum() <= 0:
            bad = (float(arr[~(np.isfinite(arr) & (arr >= 0))].flat[0])
                   if arr.size and not np.all(np.isfinite(arr) & (arr >= 0)) else self.values)
            raise ValidationError(f"Empirical.values: got {bad!r}; valid: a non-empty sequence of "
                                  f"finite numbers >= 0 with a positive mean")
        object.__setattr__(self, "values", tuple(arr.tolist()))
        object.__setattr__(self, "_array", arr / arr.mean())

    def __repr__(self) -> str:
        return f"Empirical(<{len(self.values)} values>, scv={self.scv:.4g})"

    @property
    def scv(self) -> float:
        return float(self._array.var())

    def _unit(self, rng, size):
        return rng.choice(self._array, size)
