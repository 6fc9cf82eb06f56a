"""hermes-qn: multi-stage LLM inference serving as a multi-class queueing network.

The queueing core (``Network``, ``solve``, ``simulate``, ``symbolic``) knows
nothing about LLMs; the catalogs (``hardware``, ``models``) and the roofline
(``prefill``, ``decode_step``, ``mixed_step``, ``memory_fit``) know nothing
about queues.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from . import compare, distributions, energy, hardware, kv_tiers, models, rag, scenario, service, symbolic, workload
from .distributions import (
    Deterministic,
    Empirical,
    Erlang,
    Exponential,
    Gamma,
    HyperExponential,
    Lognormal,
)
from .analysis import sensitivity, slo_capacity
from .evaluate import evaluate
from .errors import ConvergenceError, HermesError, UnsupportedError, ValidationError
from .hardware import Device, Link, MemoryTier, list_hardware, load_device
from .memory import MemoryFit, memory_fit
from .models import Model, list_models
from .models import load as load_model
from .network import Closed, Delay, Network, Open, Queue
from .scenario import Scenario, list_scenarios, load_scenario
from .roofline import StepTime, decode_step, mixed_step, prefill
from .simulate import simulate
from .solve import bounds, solve
from .sweep import best, open_sweep, pareto_front, save_sweep, sweep


def __getattr__(name: str):
    """Import :mod:`hermes_qn.plot` on first use, so matplotlib loads only when figures are drawn."""
    if name == "plot":
        return import_module(f"{__name__}.plot")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    __version__ = version("hermes-qn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    # functions
    "best",
    "bounds",
    "decode_step",
    "evaluate",
    "list_hardware",
    "list_models",
    "list_scenarios",
    "load_device",
    "load_model",
    "load_scenario",
    "memory_fit",
    "mixed_step",
    "open_sweep",
    "pareto_front",
    "prefill",
    "save_sweep",
    "sensitivity",
    "simulate",
    "slo_capacity",
    "solve",
    "sweep",
    # modules
    "compare",
    "distributions",
    "energy",
    "hardware",
    "kv_tiers",
    "models",
    "plot",
    "rag",
    "scenario",
    "service",
    "symbolic",
    "workload",
    # classes
    "Closed",
    "Delay",
    "Deterministic",
    "Device",
    "Empirical",
    "Erlang",
    "Exponential",
    "Gamma",
    "HyperExponential",
    "Link",
    "Lognormal",
    "MemoryFit",
    "MemoryTier",
    "Model",
    "Network",
    "Open",
    "Queue",
    "Scenario",
    "StepTime",
    # exceptions
    "ConvergenceError",
    "HermesError",
    "UnsupportedError",
    "ValidationError",
]
