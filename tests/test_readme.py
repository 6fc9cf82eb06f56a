"""The outputs shown in README.md are what the code prints today.

Every ```python block that is followed by a ```text block is run (in a scratch
folder) and its standard output compared with that text; a ```text block that
starts with ``$ hermes-qn run`` is compared with the CLI's output. A change to
the models that moves a number shown in the README fails here until the README
is regenerated (``python tests/test_readme.py --write``).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def _pairs(text: str) -> list[tuple[str, str, tuple[int, int]]]:
    """(kind, code, span of the text block) for each block whose output the README shows."""
    blocks = list(_BLOCK.finditer(text))
    out = []
    for a, b in zip(blocks, blocks[1:]):
        if b.group(1) != "text":
            continue
        if a.group(1) == "python" and text[a.end():b.start()].strip() == "":
            out.append(("python", a.group(2), b.span(2)))
    for b in blocks:
        if b.group(1) == "text" and b.group(2).startswith("$ hermes-qn run\n"):
            out.append(("cli", "", b.span(2)))
    return out


def _stdout_of(kind: str, code: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if kind == "python":
            exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
        else:
            from hermes_qn.cli import main
            main(["run"])
    return buf.getvalue()


def _shown(kind: str, text: str) -> str:
    return text.split("\n", 1)[1] if kind == "cli" else text


CASES = _pairs(README.read_text())


@pytest.mark.parametrize("kind, code, span", CASES, ids=[f"{k}-{i}" for i, (k, *_) in
                                                         enumerate(CASES)])
def test_readme_output_is_current(kind, code, span, tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    shown = _shown(kind, README.read_text()[span[0]:span[1]])
    assert _stdout_of(kind, code) == shown, (
        "README.md shows an output that the code no longer prints; regenerate with "
        "`python tests/test_readme.py --write` and check the prose around it")


def _write() -> None:
    import os
    import tempfile
    import matplotlib
    matplotlib.use("Agg")
    text = README.read_text()
    cwd = os.getcwd()
    for kind, code, (a, b) in sorted(_pairs(text), key=lambda c: -c[2][0]):
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            try:
                got = _stdout_of(kind, code)
            finally:
                os.chdir(cwd)
        text = text[:a] + ("$ hermes-qn run\n" if kind == "cli" else "") + got + text[b:]
    README.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write()
    else:
        sys.exit("usage: python tests/test_readme.py --write")
