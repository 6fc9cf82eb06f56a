"""Where the TOML catalogs (hardware/, models/) are, installed or in a source tree."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CATALOGS = ("hardware", "models")


def catalog_dir(name: str) -> Path:
    """Directory of the built-in catalog ``name`` ("hardware" or "models").

    An installed wheel carries the catalogs as ``hermes_qn.catalogs.<name>``;
    a source checkout has them at the top of the repository.
    """
    if name not in CATALOGS:
        raise ValueError(f"catalog: got {name!r}; valid: one of {CATALOGS}")
    try:
        return Path(str(resources.files(f"hermes_qn.catalogs.{name}")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / name
