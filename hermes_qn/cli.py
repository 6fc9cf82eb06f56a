"""The ``hermes-qn`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import __version__
from .examples import worked_example
from .report import format_result
from .solve import METHODS, solve


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermes-qn",
        description="Solve multi-class queueing networks of LLM serving in closed form.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="solve the built-in worked example network and print its tables",
        description="Solve the built-in worked example (a mixed network of 20 interactive users "
                    "and an open job stream over CPU, disk, LAN, a 4-server pool and a "
                    "load-dependent GPU) and print per-class and per-station tables.")
    run.add_argument("--method", choices=METHODS, default="auto",
                     help="solver for the closed classes (default: auto)")
    run.add_argument("--json", metavar="PATH",
                     help="also write the result as JSON (xarray's to_dict) to PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hermes-qn`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    result = solve(worked_example(), method=args.method)
    print(format_result(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(data="list"), fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
