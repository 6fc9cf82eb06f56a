"""The hermes-qn command line on the built-in worked example."""

import json

import pytest

from hermes_qn.cli import main


def test_run_prints_tables(capsys):
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "throughput [1/s]" in out and "users" in out and "gpu" in out
    assert "method: mixed+exact-mva" in out


def test_run_writes_json(tmp_path, capsys):
    path = tmp_path / "result.json"
    assert main(["run", "--method", "exact", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["attrs"]["method"] == "mixed+exact-mva"
    assert data["data_vars"]["throughput"]["dims"] == ["class"]


def test_bad_method_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--method", "fast"])
    assert exc.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err
