"""The ``hermes-qn`` command line: evaluate and sweep LLM-serving scenarios."""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import xarray as xr

from . import __version__
from .errors import HermesError
from .evaluate import evaluate
from .examples import worked_example
from .hardware import list_hardware
from .models import list_models
from .report import format_evaluation, format_result
from .scenario import list_scenarios, load_scenario
from .solve import METHODS, solve
from .sweep import save_sweep, sweep

DEFAULT_SCENARIO = "chat-h100"

_EPILOG = """examples:
  hermes-qn run                                   # the default scenario (chat on 8x H100)
  hermes-qn run scenarios/rag-cpu.toml --json out.json
  hermes-qn run disaggregated --rate chat=5 --rate code=2
  hermes-qn sweep chat-h100 --set classes.chat.rate=10,20,40,60 \\
                            --set pools.h100.batch_cap=64,256 --out sweep.nc
  hermes-qn list                                  # built-in scenarios, hardware, models
"""


def _value(text: str) -> Any:
    """A number if it parses as one, else the string (device names, strategies)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermes-qn", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Closed-form queueing models of multi-stage LLM serving: TTFT, TPOT, "
                    "end-to-end latency, throughput, utilisation, energy and cost of a "
                    "scenario (hardware pools + request classes), in milliseconds.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="evaluate a scenario and print its tables",
        description="Evaluate a scenario (a TOML file or a built-in name; default "
                    f"{DEFAULT_SCENARIO!r}) and print per-class, per-stage and per-pool tables.")
    run.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                     help=f"path to a scenario TOML or a built-in name (default {DEFAULT_SCENARIO})")
    run.add_argument("--rate", action="append", default=[], metavar="CLASS=RATE",
                     help="override an open class's arrival rate, requests/s (repeatable)")
    run.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    run.add_argument("--netcdf", metavar="PATH", help="also write the result as NetCDF to PATH")

    sweep = commands.add_parser(
        "sweep", help="evaluate a scenario over a grid of values and write a Dataset",
        description="Evaluate a scenario over the Cartesian product of --set values and write "
                    "one Dataset with a dimension per swept field (NetCDF for .nc, Zarr for "
                    ".zarr, else JSON). Arrival rates are vectorised; other fields loop.")
    sweep.add_argument("scenario", help="path to a scenario TOML or a built-in name")
    sweep.add_argument("--set", action="append", required=True, metavar="PATH=V1,V2,...",
                       dest="fields",
                       help="a field and its values, e.g. classes.chat.rate=1,2,4 or "
                            "pools.h100.batch_cap=64,128 (repeatable)")
    sweep.add_argument("--out", required=True, metavar="PATH", help="output .nc, .zarr or .json")

    listing = commands.add_parser("list", help="list built-in scenarios, hardware and models")
    listing.add_argument("what", nargs="?", choices=("scenarios", "hardware", "models"),
                         help="one list only")

    network = commands.add_parser(
        "network", help="solve the queueing core's worked example network",
        description="Solve the built-in worked example (a mixed network of 20 interactive users "
                    "and an open job stream over CPU, disk, LAN, a 4-server pool and a "
                    "load-dependent GPU) and print per-class and per-station tables.")
    network.add_argument("--method", choices=METHODS, default="auto",
                         help="solver for the closed classes (default: auto)")
    network.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    return parser


def _write(result: xr.Dataset, path: str) -> None:
    if path.endswith(".nc"):
        result.to_netcdf(path)
    else:
        Path(path).write_text(json.dumps(result.to_dict(data="list"), indent=1, default=str))


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise HermesError(f"{what}: got {item!r}; valid: KEY=VALUE")
        out[key] = value
    return out


def _run(args: argparse.Namespace) -> int:
    if args.command == "network":
        result = solve(worked_example(), method=args.method)
        print(format_result(result))
        if args.json:
            _write(result, args.json)
        return 0
    if args.command == "list":
        lists = {"scenarios": list_scenarios(), "hardware": list_hardware(),
                 "models": list_models()}
        for name, items in lists.items():
            if args.what in (None, name):
                print(f"{name}: {', '.join(items)}")
        return 0
    scenario = load_scenario(args.scenario)
    if args.command == "run":
        rates = {k: float(v) for k, v in _pairs(args.rate, "--rate").items()}
        result = evaluate(scenario, rates=rates)
        print(format_evaluation(result))
        if args.json:
            _write(result, args.json)
        if args.netcdf:
            result.to_netcdf(args.netcdf)
        return 0
    fields = {k: [_value(x) for x in v.split(",")] for k, v in _pairs(args.fields, "--set").items()}
    result = sweep(scenario, fields=fields)
    if args.out.endswith((".nc", ".zarr")):
        save_sweep(result, args.out)
    else:
        _write(result, args.out)
    print(f"wrote {args.out}: dims {dict(result.sizes)}; saturated points "
          f"{int(result.saturated.sum())} of {result.saturated.size}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hermes-qn`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        return _run(args)
    except HermesError as e:
        print(f"hermes-qn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
