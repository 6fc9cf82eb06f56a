"""The exceptions hermes-qn raises.

Every leaf subclasses a built-in (``ValueError`` or ``RuntimeError``) so that
callers who do not know hermes-qn can still catch them.
"""

from __future__ import annotations


class HermesError(Exception):
    """Base class of every error hermes-qn raises on purpose."""


class ValidationError(HermesError, ValueError):
    """An input is malformed: the message names the field, the value and what is valid."""


class ConvergenceError(HermesError, RuntimeError):
    """An iterative solver stopped before its residual fell under the tolerance.

    Attributes
    ----------
    iterations : int
        Iterations run before stopping.
    residual : float
        Largest relative change between the last two iterates.
    """

    def __init__(self, message: str, *, iterations: int, residual: float) -> None:
        super().__init__(message)
        self.iterations = iterations
        self.residual = residual


class UnsupportedError(HermesError, ValueError):
    """The chosen method cannot solve this network (the message says which can)."""
