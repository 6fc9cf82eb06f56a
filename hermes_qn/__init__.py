"""hermes-qn: multi-stage LLM inference serving as a multi-class queueing network."""

from importlib.metadata import PackageNotFoundError, version

from .errors import ConvergenceError, HermesError, UnsupportedError, ValidationError
from .network import Closed, Delay, Network, Open, Queue

try:
    __version__ = version("hermes-qn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    # classes
    "Closed",
    "Delay",
    "Network",
    "Open",
    "Queue",
    # exceptions
    "ConvergenceError",
    "HermesError",
    "UnsupportedError",
    "ValidationError",
]
