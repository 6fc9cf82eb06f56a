"""The wheel's explicit package list (pyproject.toml) names every package of the source tree."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


@pytest.mark.skipif(not (ROOT / "hermes_qn").is_dir(), reason="needs the source tree beside tests/")
def test_every_subpackage_is_listed():
    listed = set(tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hermes_qn").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_catalog_folders_are_reachable():
    from hermes_qn.catalog_paths import catalog_dir

    for name in ("hardware", "models", "scenarios"):
        assert catalog_dir(name).is_dir(), name
