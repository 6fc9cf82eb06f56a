"""Closed forms of single stations used by :func:`hermes_qn.evaluate`, vectorised over sweeps.

- :func:`batch_station` -- the load-dependent processor-sharing station of
  iteration-level batching (birth-death chain, cap ``B``, geometric tail).
- :func:`mgc_wait` -- mean wait in an M/G/c FCFS queue: Erlang C times
  ``(1 + scv) / 2`` (Allen-Cunneen; exact for c = 1, Pollaczek-Khinchine).
- :func:`gamma_quantile` -- a quantile of a gamma distribution fitted to a
  mean and a variance (the two-moment percentile approximation).
- :func:`expected_max` -- mean of the largest of ``n`` draws from a
  discretised distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["BatchState", "batch_station", "expected_max", "gamma_cdf", "gamma_quantile", "mgc_wait"]


@dataclass(frozen=True)
class BatchState:
    """Stationary moments of a batch station (arrays over the sweep shape).

    Attributes
    ----------
    mean_jobs : E[N], sequences present (running or waiting for a slot).
    mean_running : E[min(N, B)], sequences in the running batch.
    mean_waiting : E[(N - B)+], sequences waiting for a batch slot.
    busy : P(N > 0).
    full : P(N >= B), the probability an arrival finds no free batch slot.
    g_mean, g_second : E[g(min(N, B)) | N > 0] and E[g(min(N, B))**2 | N > 0]
        for the ``g`` passed (NaN when none was).
    """

    mean_jobs: np.ndarray
    mean_running: np.ndarray
    mean_waiting: np.ndarray
    busy: np.ndarray
    full: np.ndarray
    g_mean: np.ndarray
    g_second: np.ndarray


def batch_station(rho: np.ndarray, multipliers: np.ndarray, cap: np.ndarray,
                  g: np.ndarray | None = None) -> BatchState:
    """Moments of a birth-death station whose speed is ``multipliers[n-1]`` with ``n`` present.

    Parameters
    ----------
    rho : ndarray, shape (*S,)
        Offered work per second in units of the one-job speed (>= 0, and
        below ``multipliers[cap-1]`` for stability; unstable points give inf).
    multipliers : ndarray, shape (*S, L)
        Speed with ``n = 1..L`` present, relative to one job; ``multipliers[n-1]``
        for ``n > cap`` must equal ``multipliers[cap-1]``.
    cap : ndarray of int, shape (*S,)
        Batch cap ``B <= L``: beyond it the speed stays at ``multipliers[B-1]``.
    g : ndarray, shape (*S, L), optional
        A function of the running batch size (e.g. the step time) whose
        conditional moments given a busy station are wanted.

    Returns
    -------
    BatchState
    """
    rho = np.asarray(rho, dtype=float)
    L = multipliers.shape[-1]
    n = np.arange(1, L + 1)
    stable = rho < np.take_along_axis(multipliers, (cap - 1)[..., None], -1)[..., 0]
    safe = np.where(stable & (rho > 0), rho, 1e-300)
    # log p(n)/p(0) = n log rho - sum_{i<=n} log a(i), n = 1..L
    log_terms = n * np.log(safe)[..., None] - np.cumsum(np.log(multipliers), axis=-1)
    inside = n <= cap[..., None]
    log_terms = np.where(inside, log_terms, -np.inf)
    log_pB = np.take_along_axis(log_terms, (cap - 1)[..., None], -1)[..., 0]
    aB = np.take_along_axis(multipliers, (cap - 1)[..., None], -1)[..., 0]
    x = np.where(stable, safe / aB, 0.5)  # tail ratio beyond B
    shift = np.maximum(np.max(log_terms, axis=-1), 0.0)
    head = np.exp(log_terms - shift[..., None])  # n = 1..B
    p0 = np.exp(-shift)
    pB = np.exp(log_pB - shift)
    # tail n > B: p(n) = pB x^(n-B)
    tail_mass = pB * x / (1 - x)
    tail_excess = pB * x / (1 - x) ** 2  # sum (n-B) pB x^(n-B)
    total = p0 + head.sum(-1) + tail_mass
    running = ((head * n).sum(-1) + cap * tail_mass) / total
    waiting = tail_excess / total
    busy = 1.0 - p0 / total
    full = (pB + tail_mass) / total
    if g is not None:
        gB = np.take_along_axis(g, (cap - 1)[..., None], -1)[..., 0]
        busy_mass = head.sum(-1) + tail_mass
        g_mean = ((head * g).sum(-1) + gB * tail_mass) / busy_mass
        g_second = ((head * g * g).sum(-1) + gB * gB * tail_mass) / busy_mass
    else:
        g_mean = g_second = np.full(np.shape(rho), np.nan)
    zero = ~(rho > 0)
    inf = ~stable

    def fix(a: np.ndarray) -> np.ndarray:
        return np.where(inf, np.inf, np.where(zero, 0.0, a))

    if g is not None:
        g1 = np.take_along_axis(g, np.zeros(np.shape(rho) + (1,), dtype=int), -1)[..., 0]
        g_mean = np.where(zero, g1, g_mean)
        g_second = np.where(zero, g1 * g1, g_second)
    return BatchState(fix(running + waiting), fix(running), fix(waiting),
                      np.where(inf, 1.0, np.where(zero, 0.0, busy)),
                      np.where(inf, 1.0, np.where(zero, 0.0, full)), g_mean, g_second)


def mgc_wait(arrival_rate: np.ndarray, mean_service: np.ndarray, scv: np.ndarray,
             servers: int) -> np.ndarray:
    """Mean wait (s) before service in an M/G/c FCFS queue; inf when unstable.

    Erlang C probability of waiting times ``mean_service / (c (1 - rho))``,
    times ``(1 + scv) / 2`` (Allen-Cunneen). Exact for c = 1 (P-K) and for
    exponential service; an approximation otherwise.
    """
    lam = np.asarray(arrival_rate, dtype=float)
    s = np.asarray(mean_service, dtype=float)
    c = int(servers)
    a = lam * s  # offered load in servers
    rho = a / c
    stable = rho < 1
    a_safe = np.where(stable, a, 0.0)
    # Erlang C through the Erlang B recursion (stable for large c)
    b = np.ones_like(a_safe)
    for k in range(1, c + 1):
        b = a_safe * b / (k + a_safe * b)
    rho_safe = np.where(stable, rho, 0.0)
    pw = b / (1 - rho_safe * (1 - b))
    wait = pw * s / (c * (1 - rho_safe)) * (1 + np.asarray(scv)) / 2
    return np.where(stable, np.where(lam > 0, wait, 0.0), np.inf)


def gamma_quantile(mean: np.ndarray, variance: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantile ``q`` of the gamma distribution with this mean and variance.

    Degenerate (zero variance) gives the mean; inf means give inf.
    Broadcasts ``mean``/``variance`` of shape ``(*S,)`` against ``q`` of shape ``(Q,)``
    to ``(*S, Q)``.
    """
    m = np.asarray(mean, dtype=float)[..., None]
    v = np.maximum(np.asarray(variance, dtype=float)[..., None], 0.0)
    finite = np.isfinite(m) & np.isfinite(v)
    ok = finite & (v > 1e-18 * np.maximum(m * m, 1e-300)) & (m > 0)
    m_s = np.where(ok, m, 1.0)
    v_s = np.where(ok, v, 1.0)
    shape = m_s * m_s / v_s
    scale = v_s / m_s
    out = special.gammaincinv(shape, np.broadcast_to(q, shape.shape[:-1] + (len(q),))) * scale
    return np.where(ok, out, np.where(finite, m, np.inf))


def expected_max(values: np.ndarray, n: int) -> float:
    """E[max of ``n`` draws] from the equally likely ``values``."""
    v = np.sort(np.asarray(values, dtype=float))
    m = len(v)
    i = np.arange(1, m + 1)
    weights = (i / m) ** n - ((i - 1) / m) ** n
    return float((v * weights).sum())


def gamma_cdf(mean: np.ndarray, variance: np.ndarray, x: float) -> np.ndarray:
    """P(X <= x) for the gamma distribution with this mean and variance (a step at the mean
    when the variance is zero; 0 for an infinite mean)."""
    m = np.asarray(mean, dtype=float)
    v = np.maximum(np.asarray(variance, dtype=float), 0.0)
    finite = np.isfinite(m) & np.isfinite(v)
    ok = finite & (v > 1e-18 * np.maximum(m * m, 1e-300)) & (m > 0)
    m_s = np.where(ok, m, 1.0)
    v_s = np.where(ok, v, 1.0)
    out = special.gammainc(m_s * m_s / v_s, x * m_s / v_s)
    return np.where(ok, out, np.where(finite & (m <= x), 1.0, 0.0))


#: Quantile bins (edges in [0, 1]) for compressing a service-time distribution: finer in the tail.
TAIL_BINS = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.96, 0.98,
                      0.99, 0.995, 1.0])


def compress_points(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A weighted discrete distribution (``values`` (*S, n), ``weights`` (n,)) cut into the
    ``TAIL_BINS`` quantile bins: each bin's value at its middle quantile, weight its width."""
    v = np.asarray(values, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float), v.shape)
    order = np.argsort(v, axis=-1)
    v = np.take_along_axis(v, order, -1)
    cum = np.cumsum(np.take_along_axis(w, order, -1), -1)
    cum = cum / cum[..., -1:]
    mid = (TAIL_BINS[1:] + TAIL_BINS[:-1]) / 2.0
    idx = np.minimum((cum[..., None, :] < mid[:, None]).sum(-1), v.shape[-1] - 1)
    return np.take_along_axis(v, idx, -1), np.diff(TAIL_BINS)


def _per_component(wait, p_wait, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean wait, P(wait)) of each component of a mixture over ``values`` (*S, n), given
    per point (*S,) or per component (*S, n): both broadcast to ``values.shape``."""
    wait = np.asarray(wait, dtype=float)
    p = np.clip(np.asarray(p_wait, dtype=float), 1e-12, 1.0)
    if wait.ndim < values.ndim:
        wait = wait[..., None]
    if p.ndim < values.ndim:
        p = p[..., None]
    return np.broadcast_to(wait, values.shape), np.broadcast_to(p, values.shape)


def wait_mixture_cdf(x: np.ndarray, values: np.ndarray, weights: np.ndarray,
                     wait: np.ndarray, p_wait: np.ndarray) -> np.ndarray:
    """P(S + W <= x): ``S`` takes ``values[..., i]`` w.p. ``weights[i]``; ``W`` is 0 w.p.
    ``1 - p_wait`` and exponential with mean ``wait / p_wait`` otherwise (seconds).

    ``x`` (*S, Q), ``values`` (*S, n), ``wait`` and ``p_wait`` (*S,) or per component
    (*S, n): returns (*S, Q).
    """
    values = np.asarray(values, dtype=float)
    wait, p = _per_component(wait, p_wait, values)
    mu = np.maximum(wait / p, 1e-300)[..., None, :]
    p = p[..., None, :]
    d = np.asarray(x, dtype=float)[..., :, None] - values[..., None, :]
    # for d >= 0: 1 - p exp(-d / mu); for d < 0: 0 (the exponent is clipped there)
    inside = 1.0 - p * np.exp(-np.maximum(d, 0.0) / mu)
    inside[d < 0] = 0.0
    return inside @ np.asarray(weights, dtype=float)


def wait_mixture_quantile(q: np.ndarray, values: np.ndarray, weights: np.ndarray,
                          wait: np.ndarray, p_wait: np.ndarray, grid: int = 64) -> np.ndarray:
    """Quantiles ``q`` (Q,) of the distribution of :func:`wait_mixture_cdf`: (*S, Q) seconds
    (inf where a wait or value is).

    The CDF is evaluated once on ``grid`` points from the smallest value to beyond the
    largest quantile (denser near the bottom, where the atoms of no wait sit) and inverted
    by linear interpolation: within about ``(range / grid)^2`` of the exact quantile.
    """
    v = np.asarray(values, dtype=float)
    wait, p = _per_component(wait, p_wait, v)
    finite = np.all(np.isfinite(wait) & np.isfinite(v), axis=-1)
    w0 = np.where(finite[..., None], wait, 0.0)
    v0 = np.where(finite[..., None], v, 0.0)
    q = np.asarray(q, dtype=float)
    lo = v0.min(-1)
    # beyond every quantile: the largest value plus the exponential's quantile at max q
    tail = -np.log(np.clip(1.0 - q.max(), 1e-12, 1.0))
    hi = v0.max(-1) + (w0 / p).max(-1) * (tail + 1.0) + 1e-12
    u = np.linspace(0.0, 1.0, grid) ** 2
    t = lo[..., None] + (hi - lo)[..., None] * u                           # (*S, G)
    F = wait_mixture_cdf(t, v0, weights, w0, p)                             # (*S, G)
    F = np.maximum.accumulate(F, axis=-1)
    idx = np.clip((F[..., None, :] < q[:, None]).sum(-1), 1, grid - 1)    # (*S, Q)
    F0, F1 = np.take_along_axis(F, idx - 1, -1), np.take_along_axis(F, idx, -1)
    t0, t1 = np.take_along_axis(t, idx - 1, -1), np.take_along_axis(t, idx, -1)
    frac = np.clip((q - F0) / np.where(F1 > F0, F1 - F0, 1.0), 0.0, 1.0)
    out = t0 + frac * (t1 - t0)
    return np.where(finite[..., None], out, np.inf)
