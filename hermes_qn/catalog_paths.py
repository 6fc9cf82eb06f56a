"""Where the TOML catalogs (hardware/, models/, scenarios/) are, installed or in a source tree."""

from __future__ import annotations

from pathlib import Path

CATALOGS = ("hardware", "models", "scenarios")
_PACKAGE = Path(__file__).resolve().parent


def catalog_dir(name: str) -> Path:
    """Directory of the built-in catalog ``name`` ("hardware", "models" or "scenarios").

    An installed wheel carries the catalogs in ``hermes_qn/catalogs/<name>``
    (see pyproject.toml); a source checkout has them at the top of the repository.
    """
    if name not in CATALOGS:
        raise ValueError(f"catalog: got {name!r}; valid: one of {CATALOGS}")
    installed = _PACKAGE / "catalogs" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name
