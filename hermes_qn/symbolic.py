"""Closed forms of the simple stations as sympy expressions.

Each builder (:func:`mm1`, :func:`mmc`, :func:`load_dependent`, :func:`mm1k`,
:func:`mminf`) returns a :class:`StationForms`: named sympy expressions for one
station fed by a Poisson stream, written in the module's default symbols
(:data:`lam`, :data:`S`, ...) or in whatever symbols, expressions or numbers
the caller passes. Use them for sensitivities (:func:`sensitivity`), for LaTeX
in papers (:func:`latex`), for exact or high-precision numbers
(:func:`evaluate`), and as an independent check of the numeric solvers in
:mod:`hermes_qn.solvers.open` (the tests compare the two at ``rtol=1e-10``).

Units: time in seconds, rates per second. ``lam`` is the arrival rate in
requests per second, ``S`` the mean service time in seconds of one request
served alone (speed multiplier 1); loads (``lam * S``) are dimensionless
(Erlangs); mean numbers are requests; times are seconds; probabilities are
dimensionless.

Numbers passed in as Python floats become the exact rational whose ``repr``
they print (``0.1`` becomes ``1/10``; ``2.0`` becomes ``2``), so expressions
stay exact and LaTeX stays readable; the float of that rational is the float
given.

Default symbols
---------------
:data:`lam` (printed ``lambda``), :data:`S`, :data:`n` (a number of requests
present), :data:`t` (seconds, for distribution functions), :data:`p` (a
probability, for percentiles), :data:`K` (the buffer size of M/M/1/K), and
``a_1, a_2, ...`` from :func:`multiplier_symbols`. Every symbol is positive
(``n`` nonnegative integer, ``t`` nonnegative), which lets sympy simplify.

References
----------
.. [1] L. Kleinrock, *Queueing Systems, Volume 1: Theory*, Wiley, 1975.
   Ch. 3: birth-death queues in equilibrium (3.1 general solution, 3.2 M/M/1,
   3.4 M/M/inf, 3.5 M/M/m, 3.6 M/M/1/K).
.. [2] D. Gross, J. F. Shortle, J. M. Thompson, C. M. Harris, *Fundamentals of
   Queueing Theory*, 4th ed., Wiley, 2008. Ch. 2: simple Markovian models
   (2.2 M/M/1 incl. waiting-time distributions, 2.3 M/M/c, 2.4 M/M/c/K,
   2.6 M/M/inf, 2.8 state-dependent service).
.. [3] G. Bolch, S. Greiner, H. de Meer, K. S. Trivedi, *Queueing Networks and
   Markov Chains*, 2nd ed., Wiley, 2006. Ch. 3 (birth-death processes) and
   ch. 6 (single-station queueing systems: M/M/1, M/M/inf, M/M/m, M/M/1/K).

Examples
--------
>>> from hermes_qn import symbolic as hs
>>> f = hs.mm1()
>>> f.response_time
S/(-S*lambda + 1)
>>> f.evaluate("response_time", lam=0.5, S=1.0)   # 1 / (1 - 0.5) seconds
2.0
>>> hs.sensitivity(f.response_time, "lam", at={"lam": 0.5, "S": 1.0})  # S^2/(1-rho)^2
4.0
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from .errors import ValidationError

__all__ = [
    # functions
    "evaluate",
    "latex",
    "load_dependent",
    "mm1",
    "mm1k",
    "mmc",
    "mminf",
    "multiplier_symbols",
    "sensitivity",
    "to_numpy",
    # classes
    "StationForms",
    # symbols
    "K",
    "S",
    "lam",
    "n",
    "p",
    "t",
]

#: Arrival rate, requests per second (printed ``lambda``).
lam = sp.Symbol("lambda", positive=True)
#: Mean service time of one request served alone, seconds.
S = sp.Symbol("S", positive=True)
#: Number of requests present (for ``p_n``).
n = sp.Symbol("n", integer=True, nonnegative=True)
#: Time, seconds (for distribution functions).
t = sp.Symbol("t", nonnegative=True)
#: Probability in (0, 1) (for percentiles).
p = sp.Symbol("p", positive=True)
#: Buffer size of M/M/1/K: the most requests present, the one in service included.
K = sp.Symbol("K", integer=True, positive=True)

# Keyword names that stand for a symbol of another name ("lambda" is a Python keyword).
_ALIASES = {"lam": "lambda"}

_REF_MM1 = "[1] sec. 3.2; [2] sec. 2.2; [3] sec. 6.2 (M/M/1)"
_REF_MM1_DIST = ("[2] sec. 2.2 (waiting-time distributions: FCFS sojourn is exponential with "
                 "rate (1 - rho)/S); [1] ch. 5 (M/M/1 as a case of M/G/1)")
_REF_MMC = "[1] sec. 3.5; [2] sec. 2.3; [3] sec. 6.2 (M/M/m, Erlang C)"
_REF_MMC_DIST = "[2] sec. 2.3 (M/M/c waiting-time distribution, FCFS)"
_REF_LD = ("[1] sec. 3.1 (birth-death equilibrium p_n = p_0 prod lambda/mu_k); [2] sec. 2.8 "
           "(state-dependent service); [3] ch. 3; geometric tail beyond the table summed in "
           "closed form")
_REF_MM1K = "[1] sec. 3.6; [2] sec. 2.4; [3] sec. 6.2 (M/M/1/K)"
_REF_MMINF = "[1] sec. 3.4; [2] sec. 2.6; [3] sec. 6.2 (M/M/inf; M/G/inf is insensitive)"

# Left-hand sides for StationForms.latex.
_LATEX_LHS = {
    "offered_load": "a",
    "utilization": r"\rho",
    "throughput": "X",
    "p0": "P_0",
    "p_n": "P(n)",
    "normalizing_constant": "G",
    "busy_probability": r"P(N \geq 1)",
    "prob_wait": "C",
    "blocking_probability": "P_K",
    "mean_number": "L",
    "mean_number_waiting": "L_q",
    "response_time": "R",
    "waiting_time": "W",
    "response_time_cdf": r"P(T \leq t)",
    "response_time_percentile": "t_p",
    "waiting_time_cdf": r"P(W \leq t)",
    "waiting_time_percentile": "w_p",
}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class StationForms:
    """Named closed-form expressions of one station.

    Expressions are reached by item or attribute: ``forms["response_time"]``
    or ``forms.response_time``; ``list(forms)`` gives the names.

    Attributes
    ----------
    station : str
        Kendall notation plus discipline, e.g. ``"M/M/1-FCFS"``.
    parameters : mapping of str to sympy object
        What the expressions were built from (symbols or exact numbers):
        ``lam`` (requests/s), ``S`` (seconds), and ``c``, ``K`` or
        ``multipliers`` where they apply.
    expressions : mapping of str to sympy expression
        Named expressions; see each builder for the list and units.
    stability : sympy boolean
        Condition for a stationary distribution to exist (``sympy.true``
        when always stable).
    references : mapping of str to str
        Textbook source of each expression (numbers refer to the module's
        References).
    divergent : frozenset of str
        Names whose value grows without bound as the station saturates;
        :meth:`evaluate` returns ``inf`` for them at unstable points.
    defined_when_unstable : frozenset of str
        Names that make sense at unstable points (offered load, utilisation);
        every other name raises there.
    """

    station: str
    parameters: Mapping[str, Any]
    expressions: Mapping[str, sp.Expr]
    stability: sp.Basic
    references: Mapping[str, str]
    divergent: frozenset = frozenset()
    defined_when_unstable: frozenset = frozenset({"offered_load", "utilization"})

    def __getitem__(self, name: str) -> sp.Expr:
        try:
            return self.expressions[name]
        except KeyError:
            raise KeyError(f"{self.station} has no expression {name!r}; valid: "
                           f"{sorted(self.expressions)}") from None

    def __getattr__(self, name: str) -> sp.Expr:
        expressions = self.__dict__.get("expressions")
        if name.startswith("_") or expressions is None or name not in expressions:
            raise AttributeError(f"{type(self).__name__} for {self.__dict__.get('station', '?')} "
                                 f"has no attribute {name!r}"
                                 + (f"; expressions: {sorted(expressions)}" if expressions else ""))
        return expressions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.expressions)

    def __len__(self) -> int:
        return len(self.expressions)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.expressions))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"StationForms({self.station}; {params}; {', '.join(self.expressions)})"

    def symbols(self) -> dict[str, sp.Symbol]:
        """Every free symbol of the station's expressions, by name."""
        found: dict[str, sp.Symbol] = {}
        for expr in (*self.expressions.values(), self.stability):
            for sym in _free_symbols(expr):
                found[sym.name] = sym
        return found

    def is_stable(self, values: Mapping | None = None, /, **kw: Any) -> bool | None:
        """Whether :attr:`stability` holds at a point; ``None`` if the values leave it undecided."""
        known = self.symbols()
        subs = {known[name]: _exact(value, name) for name, value in
                _resolve_names(_merge(values, kw), known, strict=False).items()}
        cond = self.stability.xreplace(subs) if subs else self.stability
        if cond is sp.true:
            return True
        if cond is sp.false:
            return False
        return None

    def evaluate(self, name: str, values: Mapping | None = None, /, **kw: Any) -> float:
        """Value of the expression ``name`` at a point, as a float.

        Values for symbols that the expression does not use, but the station
        does, are ignored, so one dict of a point serves every name. At an
        unstable point the :attr:`divergent` names give ``inf`` and names not
        in :attr:`defined_when_unstable` raise :class:`ValidationError`.

        Parameters
        ----------
        name : str
            One of the station's expression names.
        values, **kw
            Symbol (or symbol name; ``lam`` for ``lambda``) to number, in the
            symbol's units (requests/s for ``lam``, seconds for ``S`` and ``t``).
        """
        expr = self[name]
        merged = _merge(values, kw)
        known = self.symbols()
        resolved = _resolve_names(merged, known, strict=True, where=self.station)
        stable = self.is_stable(resolved)
        if stable is False and name not in self.defined_when_unstable:
            if name in self.divergent:
                return math.inf
            raise ValidationError(
                f"{self.station}: {name!r} has no value at {_fmt_point(resolved)}: the station is "
                f"unstable ({self.stability} does not hold), so it has no stationary distribution; "
                f"valid: a point where {self.stability}")
        needed = {s.name for s in expr.free_symbols}
        return evaluate(expr, {k: v for k, v in resolved.items() if k in needed})

    def latex(self, name: str, **kwargs: Any) -> str:
        """``"<lhs> = <expression>"`` in LaTeX, e.g. ``R = \\frac{S}{1 - S \\lambda}``."""
        return latex(self[name], name=_LATEX_LHS.get(name, name), **kwargs)

    def sensitivity(self, name: str, symbol: sp.Symbol | str, at: Mapping | None = None, *,
                    elasticity: bool = False) -> sp.Expr | float:
        """:func:`sensitivity` of the expression ``name``."""
        return sensitivity(self[name], symbol, at, elasticity=elasticity)


def _forms(station: str, parameters: dict, exprs: dict, stability: sp.Basic, refs: dict,
           divergent: Sequence[str], defined_when_unstable: Sequence[str] = ("offered_load",
                                                                             "utilization")
           ) -> StationForms:
    return StationForms(
        station=station,
        parameters=MappingProxyType(dict(parameters)),
        expressions=MappingProxyType(dict(exprs)),
        stability=stability,
        references=MappingProxyType({k: refs[k] for k in exprs}),
        divergent=frozenset(divergent) & frozenset(exprs),
        defined_when_unstable=frozenset(defined_when_unstable) & frozenset(exprs),
    )


# --------------------------------------------------------------------------- argument checks


def _to_sympy_number(value: Any, field: str) -> sp.Expr:
    """An exact sympy number for a Python/numpy/sympy real; floats via their repr."""
    if isinstance(value, bool):
        raise ValidationError(f"{field}: got {value!r}; valid: a real number or a sympy expression")
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, (numbers.Integral, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    if isinstance(value, (numbers.Real, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            raise ValidationError(f"{field}: got {value!r}; valid: a finite real number")
        return sp.Integer(int(x)) if x.is_integer() else sp.Rational(repr(x))
    raise ValidationError(f"{field}: got {value!r} of type {type(value).__name__}; valid: a real "
                          f"number or a sympy expression")


def _param_iv(field: str, value: Any, default: sp.Symbol, *, positive: bool) -> sp.Expr:
    """Default symbol for None; otherwise a sympy expression, checked when it is a number."""
    if value is None:
        return default
    expr = _to_sympy_number(value, field)
    if not isinstance(expr, sp.Expr):
        raise ValidationError(f"{field}: got {value!r}; valid: a real number or a sympy expression")
    if expr.is_number:
        if expr.is_real is not True or expr.is_finite is False:
            raise ValidationError(f"{field}: got {value!r}; valid: a finite real number")
        if (expr <= 0) if positive else (expr < 0):
            raise ValidationError(f"{field}: got {value!r}; valid: "
                                  f"{'> 0' if positive else '>= 0'}")
    return expr


def _int_iv(field: str, value: Any, *, low: int, valid: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer, sp.Integer)) \
            or int(value) < low:
        raise ValidationError(f"{field}: got {value!r}; valid: {valid}")
    return int(value)


def _discipline_iv(discipline: str) -> str:
    if discipline not in ("fcfs", "ps"):
        raise ValidationError(f"discipline: got {discipline!r}; valid: 'fcfs' or 'ps'")
    return discipline


def multiplier_symbols(count: int) -> tuple[sp.Symbol, ...]:
    """Positive symbols ``a_1, ..., a_count`` for a load-dependent rate table."""
    count = _int_iv("count", count, low=1, valid="an integer >= 1")
    return tuple(sp.Symbol(f"a_{i}", positive=True) for i in range(1, count + 1))


def _multipliers_iv(multipliers: Any) -> tuple[sp.Expr, ...]:
    if isinstance(multipliers, (numbers.Integral, np.integer)) and not isinstance(multipliers, bool):
        return multiplier_symbols(int(multipliers))
    if isinstance(multipliers, (str, bytes)) or not isinstance(multipliers, (Sequence, np.ndarray)):
        raise ValidationError(f"multipliers: got {multipliers!r}; valid: a non-empty sequence of "
                              f"positive numbers or sympy expressions, or an integer L for symbols "
                              f"a_1..a_L")
    table = tuple(_param_iv(f"multipliers[{i}]", a, sp.Symbol(f"a_{i + 1}", positive=True),
                            positive=True) for i, a in enumerate(multipliers))
    if not table:
        raise ValidationError("multipliers: got an empty sequence; valid: one or more positive "
                              "numbers or sympy expressions")
    return table


# --------------------------------------------------------------------------- stations


def mm1(lam: Any = None, S: Any = None, *, discipline: str = "fcfs") -> StationForms:
    """M/M/1: one exponential server fed by a Poisson stream.

    Parameters
    ----------
    lam : number or sympy expression, optional
        Arrival rate, requests per second (default: the symbol :data:`lam`).
    S : number or sympy expression, optional
        Mean service time, seconds (default: the symbol :data:`S`).
    discipline : {"fcfs", "ps"}
        Means are the same under both; only FCFS has the exponential sojourn
        time, so the distribution entries are given for FCFS only.

    Returns
    -------
    StationForms
        With ``rho = lam * S``:

        - ``offered_load``, ``utilization``: ``rho`` (dimensionless)
        - ``throughput``: ``lam`` (requests/s)
        - ``p0``: ``1 - rho``; ``p_n``: ``(1 - rho) rho**n`` (in symbol :data:`n`)
        - ``mean_number``: ``rho / (1 - rho)``; ``mean_number_waiting``:
          ``rho**2 / (1 - rho)`` (requests)
        - ``response_time``: ``S / (1 - rho)``; ``waiting_time``:
          ``rho S / (1 - rho)`` (seconds; under PS, the mean delay beyond ``S``)
        - FCFS only: ``response_time_cdf`` ``1 - exp(-(1 - rho) t / S)`` (in
          :data:`t`), ``response_time_percentile`` ``-S log(1 - p) / (1 - rho)``
          (in :data:`p`), ``waiting_time_cdf`` ``1 - rho exp(-(1 - rho) t / S)``,
          ``waiting_time_percentile`` ``max(0, S log(rho / (1 - p)) / (1 - rho))``.

        Stable when ``rho < 1``. References: [1] sec. 3.2, [2] sec. 2.2,
        [3] sec. 6.2.
    """
    lam_e = _param_iv("lam", lam, globals()["lam"], positive=False)
    S_e = _param_iv("S", S, globals()["S"], positive=True)
    return _mm1(lam_e, S_e, _discipline_iv(discipline))


@lru_cache(maxsize=256)
def _mm1(lam_: sp.Expr, S_: sp.Expr, discipline: str) -> StationForms:
    rho = lam_ * S_
    exprs = {
        "offered_load": rho,
        "utilization": rho,
        "throughput": lam_,
        "p0": 1 - rho,
        "p_n": (1 - rho) * rho**n,
        "mean_number": rho / (1 - rho),
        "mean_number_waiting": rho**2 / (1 - rho),
        "response_time": S_ / (1 - rho),
        "waiting_time": rho * S_ / (1 - rho),
    }
    refs = dict.fromkeys(exprs, _REF_MM1)
    if discipline == "fcfs":
        rate = (1 - rho) / S_  # the sojourn time is exponential with this rate, per second
        exprs |= {
            "response_time_cdf": 1 - sp.exp(-rate * t),
            "response_time_percentile": -sp.log(1 - p) / rate,
            "waiting_time_cdf": 1 - rho * sp.exp(-rate * t),
            "waiting_time_percentile": sp.Max(0, sp.log(rho / (1 - p)) / rate),
        }
        refs |= dict.fromkeys(("response_time_cdf", "response_time_percentile",
                               "waiting_time_cdf", "waiting_time_percentile"), _REF_MM1_DIST)
    return _forms(f"M/M/1-{discipline.upper()}", {"lam": lam_, "S": S_}, exprs,
                  sp.StrictLessThan(rho, 1), refs,
                  divergent=("mean_number", "mean_number_waiting", "response_time", "waiting_time",
                             "response_time_percentile", "waiting_time_percentile"))


def mmc(lam: Any = None, S: Any = None, c: int = 2, *, discipline: str = "fcfs") -> StationForms:
    """M/M/c: ``c`` exponential servers, one queue (Erlang C).

    ``c`` must be a concrete integer: Erlang C has a finite sum over ``0..c-1``,
    which is written out term by term. (The same station is
    ``Queue(servers=c)``, and ``load_dependent(multipliers=[1, ..., c])``.)

    Parameters
    ----------
    lam : number or sympy expression, optional
        Arrival rate, requests per second (default: the symbol :data:`lam`).
    S : number or sympy expression, optional
        Mean service time of one request at one server, seconds (default :data:`S`).
    c : int
        Number of servers, >= 1.
    discipline : {"fcfs", "ps"}
        Means are the same; the waiting-time distribution is given for FCFS only.

    Returns
    -------
    StationForms
        With offered load ``a = lam * S`` (Erlangs) and ``rho = a / c``:

        - ``offered_load``: ``a``; ``utilization``: ``rho``; ``throughput``: ``lam``
        - ``p0``: ``1 / (sum_{k<c} a**k/k! + a**c / (c! (1 - rho)))``
        - ``p_n``: ``p0 a**n / n!`` for ``n < c``, ``p0 a**n / (c! c**(n-c))`` beyond
        - ``prob_wait`` (Erlang C, ``P(N >= c)``):
          ``(a**c / (c! (1 - rho))) p0``
        - ``waiting_time``: ``C S / (c - a)`` seconds; ``response_time``:
          ``S + waiting_time``
        - ``mean_number_waiting``: ``lam * waiting_time``; ``mean_number``:
          ``a + mean_number_waiting`` (requests)
        - FCFS only: ``waiting_time_cdf`` ``1 - C exp(-(c - a) t / S)``,
          ``waiting_time_percentile`` ``max(0, S log(C / (1 - p)) / (c - a))``.

        Stable when ``a < c``. References: [1] sec. 3.5, [2] sec. 2.3, [3] sec. 6.2.
    """
    lam_e = _param_iv("lam", lam, globals()["lam"], positive=False)
    S_e = _param_iv("S", S, globals()["S"], positive=True)
    if isinstance(c, sp.Basic) and not isinstance(c, sp.Integer):
        raise ValidationError(f"c: got {c!r}; valid: a concrete integer >= 1 (Erlang C's sum over "
                              f"0..c-1 is written out term by term)")
    c_ = _int_iv("c", c, low=1, valid="a concrete integer >= 1")
    return _mmc(lam_e, S_e, c_, _discipline_iv(discipline))


@lru_cache(maxsize=256)
def _mmc(lam_: sp.Expr, S_: sp.Expr, c: int, discipline: str) -> StationForms:
    a = lam_ * S_
    rho = a / c
    head = sp.Add(*[a**k / sp.factorial(k) for k in range(c)])
    top = a**c / (sp.factorial(c) * (1 - rho))
    p0 = 1 / (head + top)
    erlang_c = top / (head + top)
    wait = erlang_c * S_ / (c - a)
    exprs = {
        "offered_load": a,
        "utilization": rho,
        "throughput": lam_,
        "p0": p0,
        "p_n": sp.Piecewise(*[(p0 * a**k / sp.factorial(k), sp.Eq(n, k)) for k in range(c)],
                            (p0 * a**n / (sp.factorial(c) * sp.Integer(c) ** (n - c)), True)),
        "prob_wait": erlang_c,
        "waiting_time": wait,
        "response_time": S_ + wait,
        "mean_number_waiting": lam_ * wait,
        "mean_number": a + lam_ * wait,
    }
    refs = dict.fromkeys(exprs, _REF_MMC)
    if discipline == "fcfs":
        exprs |= {
            "waiting_time_cdf": 1 - erlang_c * sp.exp(-(c - a) * t / S_),
            "waiting_time_percentile": sp.Max(0, S_ * sp.log(erlang_c / (1 - p)) / (c - a)),
        }
        refs |= dict.fromkeys(("waiting_time_cdf", "waiting_time_percentile"), _REF_MMC_DIST)
    return _forms(f"M/M/{c}-{discipline.upper()}", {"lam": lam_, "S": S_, "c": c}, exprs,
                  sp.StrictLessThan(a, c), refs,
                  divergent=("mean_number", "mean_number_waiting", "response_time", "waiting_time",
                             "waiting_time_percentile"))


def load_dependent(lam: Any = None, S: Any = None, multipliers: Any = 2) -> StationForms:
    """A load-dependent birth-death station (``Queue(rate_multipliers=...)``).

    With ``k`` requests present the station works ``a(k)`` times as fast as
    with one, completing requests at rate ``a(k) / S`` per second; the table
    ``a(1), ..., a(L)`` holds its last value for ``k > L``. ``c`` servers are
    ``a = (1, 2, ..., c)``; decode under continuous batching is
    ``a(k) = k t(1) / t(k)`` up to the batch cap.

    Parameters
    ----------
    lam : number or sympy expression, optional
        Arrival rate, requests per second (default: the symbol :data:`lam`).
    S : number or sympy expression, optional
        Mean service time of one request served alone, seconds (default :data:`S`).
    multipliers : sequence or int
        ``a(1), ..., a(L)`` as positive numbers or sympy expressions, or an
        integer ``L`` for the symbols ``a_1, ..., a_L``.

    Returns
    -------
    StationForms
        With offered load ``rho = lam * S`` (in units of the speed with one
        request present), ``A(k) = a(1) ... a(k)``, ``T(k) = rho**k / A(k)`` and
        tail ratio ``x = rho / a(L)``:

        - ``offered_load``: ``rho``; ``utilization``: ``rho / a(L)`` (share of
          the asymptotic capacity, as in the numeric solvers); ``throughput``: ``lam``
        - ``normalizing_constant``: ``G = sum_{k<L} T(k) + T(L) / (1 - x)``
          (the geometric tail ``k >= L`` summed in closed form)
        - ``p0``: ``1 / G``; ``busy_probability``: ``1 - 1/G``
        - ``p_n``: ``T(n) / G`` for ``n <= L``, ``T(L) x**(n-L) / G`` beyond
        - ``mean_number``: ``(sum_{k<L} k T(k) + T(L) (L/(1-x) + x/(1-x)**2)) / G``
          requests
        - ``response_time``: ``mean_number / lam`` seconds (Little), written
          with ``rho`` divided out so that it is finite at ``lam = 0``, where
          it is ``S / a(1)``.

        Stable when ``rho < a(L)``. References: [1] sec. 3.1, [2] sec. 2.8, [3] ch. 3.
    """
    lam_e = _param_iv("lam", lam, globals()["lam"], positive=False)
    S_e = _param_iv("S", S, globals()["S"], positive=True)
    return _load_dependent(lam_e, S_e, _multipliers_iv(multipliers))


@lru_cache(maxsize=256)
def _load_dependent(lam_: sp.Expr, S_: sp.Expr, table: tuple[sp.Expr, ...]) -> StationForms:
    L = len(table)
    rho = lam_ * S_
    prods = [sp.Integer(1)]
    for a in table:
        prods.append(prods[-1] * a)  # A(k) = a(1) ... a(k), k = 0..L
    terms = [rho**k / prods[k] for k in range(L + 1)]  # T(k)
    x = rho / table[-1]
    G = sp.Add(*terms[:L]) + terms[L] / (1 - x)
    tail_factor = L / (1 - x) + x / (1 - x) ** 2  # sum_{k>=L} k x^(k-L)
    # mean_number / rho, term by term, so that it is a rational function with no 0/0 at rho = 0.
    n_over_rho = (sp.Add(*[k * rho ** (k - 1) / prods[k] for k in range(1, L)])
                  + rho ** (L - 1) / prods[L] * tail_factor) / G
    exprs = {
        "offered_load": rho,
        "utilization": rho / table[-1],
        "throughput": lam_,
        "normalizing_constant": G,
        "p0": 1 / G,
        "busy_probability": 1 - 1 / G,
        "p_n": sp.Piecewise(*[(terms[k] / G, sp.Eq(n, k)) for k in range(L)],
                            (terms[L] * x ** (n - L) / G, True)),
        "mean_number": rho * n_over_rho,
        "response_time": S_ * n_over_rho,
    }
    return _forms(f"M/M(n)/1 load-dependent (L={L})", {"lam": lam_, "S": S_, "multipliers": table},
                  exprs, sp.StrictLessThan(rho, table[-1]), dict.fromkeys(exprs, _REF_LD),
                  divergent=("mean_number", "response_time", "normalizing_constant"))


def mm1k(lam: Any = None, S: Any = None, K: Any = None) -> StationForms:
    """M/M/1/K: one exponential server, at most ``K`` requests present; arrivals finding it full are lost.

    Parameters
    ----------
    lam : number or sympy expression, optional
        Offered arrival rate, requests per second (default :data:`lam`).
    S : number or sympy expression, optional
        Mean service time, seconds (default :data:`S`).
    K : int or sympy symbol, optional
        Capacity, the request in service included, >= 1 (default: the symbol
        :data:`K`). A concrete ``K`` gives finite sums, exact at every load; a
        symbolic one gives the geometric closed forms, with a ``Piecewise``
        branch for ``rho = 1``.

    Returns
    -------
    StationForms
        With ``rho = lam * S`` and ``G = sum_{k<=K} rho**k``:

        - ``offered_load``: ``rho``; ``utilization``: ``1 - p0`` (server busy)
        - ``p0``: ``1/G``; ``p_n``: ``rho**n / G`` for ``n <= K``, else 0
        - ``blocking_probability``: ``rho**K / G``
        - ``throughput``: ``lam (1 - blocking_probability)`` requests/s
        - ``mean_number``: ``sum_k k rho**k / G``; ``mean_number_waiting``:
          ``mean_number - utilization``
        - ``response_time``: ``mean_number / throughput`` (of admitted requests),
          ``S (1 - (K+1) rho**K + K rho**(K+1)) / ((1 - rho)(1 - rho**K))``;
          ``waiting_time``: ``response_time - S``.

        Always stable. References: [1] sec. 3.6, [2] sec. 2.4, [3] sec. 6.2.
    """
    lam_e = _param_iv("lam", lam, globals()["lam"], positive=False)
    S_e = _param_iv("S", S, globals()["S"], positive=True)
    if K is None:
        K_e: sp.Expr | int = globals()["K"]
    elif isinstance(K, sp.Symbol):
        K_e = K
    else:
        K_e = _int_iv("K", K, low=1, valid="an integer >= 1 or a sympy symbol")
    return _mm1k(lam_e, S_e, K_e)


@lru_cache(maxsize=256)
def _mm1k(lam_: sp.Expr, S_: sp.Expr, K_: sp.Expr | int) -> StationForms:
    rho = lam_ * S_
    if isinstance(K_, int):
        G = sp.Add(*[rho**k for k in range(K_ + 1)])
        mean = sp.Add(*[k * rho**k for k in range(1, K_ + 1)]) / G
        # mean / throughput with lam divided out: S sum_{k=1..K} k rho^(k-1) / sum_{k<K} rho^k.
        resp = S_ * sp.Add(*[k * rho ** (k - 1) for k in range(1, K_ + 1)]) \
            / sp.Add(*[rho**k for k in range(K_)])
        block = rho**K_ / G
        p_n = sp.Piecewise((rho**n / G, n <= K_), (0, True))
        p0 = 1 / G
    else:
        one = sp.Eq(rho, 1)  # the geometric closed forms have a removable singularity there
        G = sp.Piecewise((K_ + 1, one), ((1 - rho ** (K_ + 1)) / (1 - rho), True))
        p0 = 1 / G
        block = sp.Piecewise((1 / (K_ + 1), one), (rho**K_ * (1 - rho) / (1 - rho ** (K_ + 1)), True))
        mean = sp.Piecewise((K_ / sp.Integer(2), one),
                            (rho / (1 - rho) - (K_ + 1) * rho ** (K_ + 1) / (1 - rho ** (K_ + 1)),
                             True))
        resp = sp.Piecewise((S_ * (K_ + 1) / 2, one),
                            (S_ * (1 - (K_ + 1) * rho**K_ + K_ * rho ** (K_ + 1))
                             / ((1 - rho) * (1 - rho**K_)), True))
        p_n = sp.Piecewise((0, n > K_), (1 / (K_ + 1), one),
                           (rho**n * (1 - rho) / (1 - rho ** (K_ + 1)), True))
    exprs = {
        "offered_load": rho,
        "utilization": 1 - p0,
        "throughput": lam_ * (1 - block),
        "p0": p0,
        "p_n": p_n,
        "blocking_probability": block,
        "mean_number": mean,
        "mean_number_waiting": mean - (1 - p0),
        "response_time": resp,
        "waiting_time": resp - S_,
    }
    return _forms(f"M/M/1/{K_}", {"lam": lam_, "S": S_, "K": K_}, exprs, sp.true,
                  dict.fromkeys(exprs, _REF_MM1K), divergent=())


def mminf(lam: Any = None, S: Any = None) -> StationForms:
    """M/M/inf (a :class:`hermes_qn.Delay` station): every request served at once.

    The results hold for any service distribution with mean ``S`` (M/G/inf).

    Parameters
    ----------
    lam : number or sympy expression, optional
        Arrival rate, requests per second (default :data:`lam`).
    S : number or sympy expression, optional
        Mean service time, seconds (default :data:`S`).

    Returns
    -------
    StationForms
        With ``a = lam * S``: ``offered_load`` and ``utilization`` ``a`` (mean
        busy servers, as the numeric solvers report for delays), ``throughput``
        ``lam``, ``p0`` ``exp(-a)``, ``p_n`` ``exp(-a) a**n / n!`` (Poisson),
        ``mean_number`` ``a``, ``response_time`` ``S``, ``waiting_time`` 0.
        Always stable. References: [1] sec. 3.4, [2] sec. 2.6, [3] sec. 6.2.
    """
    lam_e = _param_iv("lam", lam, globals()["lam"], positive=False)
    S_e = _param_iv("S", S, globals()["S"], positive=True)
    return _mminf(lam_e, S_e)


@lru_cache(maxsize=256)
def _mminf(lam_: sp.Expr, S_: sp.Expr) -> StationForms:
    a = lam_ * S_
    exprs = {
        "offered_load": a,
        "utilization": a,
        "throughput": lam_,
        "p0": sp.exp(-a),
        "p_n": sp.exp(-a) * a**n / sp.factorial(n),
        "mean_number": a,
        "response_time": S_,
        "waiting_time": sp.Integer(0),
    }
    return _forms("M/M/inf", {"lam": lam_, "S": S_}, exprs, sp.true,
                  dict.fromkeys(exprs, _REF_MMINF), divergent=())


# --------------------------------------------------------------------------- using expressions


def _merge(values: Mapping | None, kw: Mapping[str, Any]) -> dict:
    if values is not None and not isinstance(values, Mapping):
        raise ValidationError(f"values: got {values!r}; valid: a mapping of symbol or symbol name "
                              f"to number")
    merged = dict(values or {})
    merged.update(kw)
    return merged


def _resolve_names(values: Mapping, known: Mapping[str, sp.Symbol], *, strict: bool,
                   where: str = "expression") -> dict[str, Any]:
    """``{symbol name: value}``; keys may be symbols, names, or aliases (``lam``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.name if isinstance(key, sp.Symbol) else _ALIASES.get(key, key) \
            if isinstance(key, str) else None
        if name is None:
            raise ValidationError(f"values: got key {key!r}; valid: a sympy Symbol or a symbol name")
        if name not in known:
            if strict:
                raise ValidationError(f"{where}: got a value for {key!r}, which it does not use; "
                                      f"valid: {sorted(known)} ('lam' for 'lambda')")
            continue
        out[name] = value
    return out


def _exact(value: Any, name: str) -> sp.Expr:
    number = _to_sympy_number(value, name)
    if isinstance(value, (float, np.floating)):
        number = sp.Rational(float(value))  # the binary value exactly, so boundaries are decided right
    return number


@lru_cache(maxsize=4096)
def _free_symbols(expr: sp.Basic) -> tuple[sp.Symbol, ...]:
    """Free symbols sorted by name (sympy does not cache them; long tables make that slow)."""
    return tuple(sorted(expr.free_symbols, key=lambda s: (s.name, str(s.assumptions0))))


_MP = mpmath.MPContext()
_MP.dps = 40  # digits for evaluate(); a private context, so the global mpmath.mp is left alone
_MP_NAMESPACE = {name: getattr(_MP, name) for name in dir(_MP) if not name.startswith("_")}


@lru_cache(maxsize=1024)
def _compiled(expr: sp.Basic, symbols: tuple[sp.Symbol, ...]) -> Callable:
    return sp.lambdify(symbols, expr, modules=[_MP_NAMESPACE, "mpmath"])


def _to_mpf(value: Any, name: str) -> Any:
    if isinstance(value, bool):
        raise ValidationError(f"{name}: got {value!r}; valid: a finite real number")
    if isinstance(value, (numbers.Integral, np.integer)):
        return _MP.mpf(int(value))
    if isinstance(value, Fraction):
        return _MP.mpf(value.numerator) / value.denominator
    if isinstance(value, sp.Rational):
        return _MP.mpf(int(value.p)) / int(value.q)
    if isinstance(value, sp.Basic) and value.is_number and value.is_real:
        return _MP.mpf(str(sp.N(value, _MP.dps + 5)))
    if isinstance(value, (numbers.Real, np.floating)) and math.isfinite(float(value)):
        return _MP.mpf(float(value))
    raise ValidationError(f"{name}: got {value!r}; valid: a finite real number")


def evaluate(expr: sp.Basic, values: Mapping | None = None, /, **kw: Any) -> float:
    """Value of a closed-form expression at a point, as a float.

    The expression is compiled once per expression (``sympy.lambdify``, cached)
    and run in 40-digit mpmath arithmetic, so long rate tables neither
    overflow nor lose digits; the result is rounded to a float at the end.

    Parameters
    ----------
    expr : sympy expression
    values, **kw
        A number for every free symbol of ``expr``, keyed by the symbol or its
        name (``lam`` for ``lambda``), in that symbol's units: requests per
        second for rates, seconds for times.

    Returns
    -------
    float
        In the expression's units (see the builder that made it).

    Raises
    ------
    ValidationError
        A free symbol has no value, a value names a symbol the expression does
        not use, a value is not a finite real, or the result is not real
        (e.g. a percentile asked at ``p >= 1``).

    Examples
    --------
    >>> evaluate(mm1().mean_number, lam=0.75, S=1.0)   # rho / (1 - rho)
    3.0
    """
    expr = sp.sympify(expr)
    symbols = _free_symbols(expr)
    known = {s.name: s for s in symbols}
    if len(known) != len(symbols):
        raise ValidationError(f"evaluate: two free symbols of {expr} share a name "
                              f"({[s.name for s in symbols]}); valid: distinct names")
    resolved = _resolve_names(_merge(values, kw), known, strict=True)
    missing = sorted(set(known) - set(resolved))
    if missing:
        raise ValidationError(f"evaluate: no value for {missing} ('lam' for 'lambda'); "
                              f"valid: a number for each of {sorted(known)}")
    args = [_to_mpf(resolved[s.name], s.name) for s in symbols]
    try:
        result = _compiled(expr, symbols)(*args)
    except ZeroDivisionError:
        raise ValidationError(f"evaluate: {expr} divides by zero at {_fmt_point(resolved)}; "
                              f"valid: a point inside its domain") from None
    if isinstance(result, mpmath.mpc) or (hasattr(result, "imag") and result.imag != 0):
        raise ValidationError(f"evaluate: {expr} is not real at {_fmt_point(resolved)} "
                              f"(got {result}); valid: a point inside its domain")
    return float(result)


def to_numpy(expr: sp.Basic, *symbols: sp.Symbol) -> Callable[..., np.ndarray]:
    """A numpy function of ``symbols`` computing ``expr``, for sweeps over arrays.

    Faster than :func:`evaluate` but in float64: long load-dependent tables
    (``rho**L`` past about ``1e308``) overflow; use :mod:`hermes_qn.solvers.open`
    for those. Arguments and results are in the symbols' and expression's units.

    Examples
    --------
    >>> f = to_numpy(mm1().response_time, lam, S)
    >>> f(np.array([0.0, 0.5]), 1.0).tolist()
    [1.0, 2.0]
    """
    expr = sp.sympify(expr)
    if not symbols:
        symbols = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    missing = sorted(s.name for s in expr.free_symbols - set(symbols))
    if missing:
        raise ValidationError(f"to_numpy: {missing} are free in the expression but not among the "
                              f"arguments {[s.name for s in symbols]}; valid: list every free symbol")
    return sp.lambdify(symbols, expr, modules="numpy")


def sensitivity(expr: sp.Basic, symbol: sp.Symbol | str, at: Mapping | None = None, *,
                elasticity: bool = False) -> sp.Expr | float:
    """Derivative of ``expr`` with respect to ``symbol``, optionally at a point.

    Parameters
    ----------
    expr : sympy expression
    symbol : sympy Symbol or str
        The variable; a name (``"lam"`` for ``lambda``) must be free in ``expr``.
    at : mapping, optional
        A point (symbol or name to number); then the derivative's value there
        is returned, as by :func:`evaluate`.
    elasticity : bool
        Return ``d log(expr) / d log(symbol)`` (``symbol/expr * dexpr/dsymbol``),
        the relative change of ``expr`` per relative change of ``symbol``,
        which has no units.

    Returns
    -------
    sympy expression or float
        In units of ``expr`` per unit of ``symbol`` (e.g. seconds of response
        time per request/s of arrival rate), or dimensionless for elasticities.
    """
    expr = sp.sympify(expr)
    if isinstance(symbol, str):
        name = _ALIASES.get(symbol, symbol)
        matches = [s for s in expr.free_symbols if s.name == name]
        if not matches:
            raise ValidationError(f"sensitivity: {symbol!r} is not free in {expr}; valid: one of "
                                  f"{sorted(s.name for s in expr.free_symbols)} ('lam' for 'lambda')")
        symbol = matches[0]
    elif not isinstance(symbol, sp.Symbol):
        raise ValidationError(f"sensitivity: got symbol {symbol!r}; valid: a sympy Symbol or a name")
    result = sp.diff(expr, symbol)
    if elasticity:
        result = result * symbol / expr
    if at is None:
        return result
    point = _merge(at, {})
    used = {s.name for s in _free_symbols(result)}
    return evaluate(result, {k: v for k, v in point.items()
                             if (k.name if isinstance(k, sp.Symbol) else _ALIASES.get(k, k)) in used})


def latex(expr: sp.Basic, name: str | None = None, **kwargs: Any) -> str:
    """LaTeX of an expression, as ``"name = ..."`` when ``name`` (a LaTeX string) is given.

    Extra keyword arguments go to :func:`sympy.latex`.

    Examples
    --------
    >>> latex(mm1().response_time, "R")
    'R = \\\\frac{S}{- S \\\\lambda + 1}'
    """
    body = sp.latex(sp.sympify(expr), **kwargs)
    return body if name is None else f"{name} = {body}"


def _fmt_point(values: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in values.items()) + "}"
