#!/usr/bin/env python3
"""Make a fresh virtual environment, install hermes-qn with its test extras, run every test.

Usage: python3 scripts/test.py [extra pytest arguments]

The environment lives in .venv-test/ and is rebuilt from scratch on every run,
so a passing run means a clean machine with only Python can do the same. The
package is installed as a wheel (not editable), and pytest runs from outside
the source tree, so the tests exercise what `pip install` ships.
Notebooks in notebooks/ are executed by tests/test_notebooks.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = ROOT / ".venv-test"


def run(*cmd: str | Path, **kwargs) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def main() -> int:
    if ENV.exists():
        shutil.rmtree(ENV)
    venv.create(ENV, with_pip=True)
    python = ENV / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(python, "-m", "pip", "install", "--quiet", f"{ROOT}[dev]")
    # The real traces sit beside the checkout (../shared/traces); tests that need them skip
    # when they are absent. Name the folder explicitly: the tests run from tests/.
    env = dict(os.environ)
    traces = ROOT.parent / "shared" / "traces"
    if traces.is_dir():
        env.setdefault("HERMES_QN_TRACES", str(traces))
    # Run from tests/ with rootdir pinned, so `import hermes_qn` finds the installed wheel.
    result = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-rs",
                             "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                             str(ROOT / "tests"), *sys.argv[1:]], cwd=ROOT / "tests", env=env)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
