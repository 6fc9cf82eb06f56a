"""Where the TOML catalogs (hardware/, models/, scenarios/) are, installed or in a source tree."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import ValidationError

T = TypeVar("T")

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


@lru_cache(maxsize=2048)
def _parse_once(parse: Callable[[Path], T], path: str, mtime_ns: int, size: int) -> T:
    return parse(Path(path))


def load_cached(path: Path, parse: Callable[[Path], T], what: str, valid: str) -> T:
    """``parse(path)``, read once per (file, modification time, size): edits are re-read.

    ``what`` names the kind of file and ``valid`` what a good path is, for the
    error raised when ``path`` is missing or not a file.
    """
    try:
        st = path.stat()
    except OSError:
        raise ValidationError(f"{what} file {str(path)!r} does not exist; valid: {valid}") from None
    if not path.is_file():
        raise ValidationError(f"{what} file {str(path)!r} is not a file; valid: {valid}")
    return _parse_once(parse, str(path.resolve()), st.st_mtime_ns, st.st_size)


def read_toml(path: Path, where: str, readme: str) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; errors start with ``where`` and point at ``readme``."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{where}: not valid TOML ({exc}); valid: a TOML file as described "
                              f"in {readme}") from None
    except OSError as exc:
        raise ValidationError(f"{where}: cannot be read ({exc.strerror}); valid: a readable "
                              ".toml file") from None
