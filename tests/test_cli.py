"""The hermes-qn command line: scenarios, sweeps, listings and the core's worked example."""

import json

import pytest
import xarray as xr

from hermes_qn.cli import main


def test_run_default_scenario_prints_tables(capsys):
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "scenario: chat-h100" in out
    assert "ttft [s]" in out and "generate.decode" in out and "utilization" in out
    assert "capacity" in out


def test_run_writes_json_and_netcdf(tmp_path, capsys):
    js, nc = tmp_path / "r.json", tmp_path / "r.nc"
    assert main(["run", "disaggregated", "--rate", "chat=2", "--json", str(js),
                 "--netcdf", str(nc)]) == 0
    data = json.loads(js.read_text())
    assert data["data_vars"]["ttft"]["dims"] == ["class"]
    assert data["data_vars"]["throughput"]["data"][0] == pytest.approx(2.0)
    ds = xr.open_dataset(nc)
    assert list(ds["class"].values) == ["chat", "code"]
    ds.close()


def test_sweep_writes_a_dataset_with_a_dimension_per_field(tmp_path, capsys):
    out = tmp_path / "s.nc"
    assert main(["sweep", "chat-h100", "--set", "classes.chat.rate=5,10,2000",
                 "--set", "pools.h100.batch_cap=32,64", "--out", str(out)]) == 0
    ds = xr.open_dataset(out)
    assert ds.ttft.sizes["classes_chat_rate"] == 3 and ds.ttft.sizes["pools_h100_batch_cap"] == 2
    assert bool(ds.saturated.sel(classes_chat_rate=2000).all())       # kept, flagged
    assert not bool(ds.saturated.sel(classes_chat_rate=5).any())
    ds.close()


def test_errors_are_one_line_and_exit_2(capsys):
    assert main(["run", "no-such-scenario"]) == 2
    err = capsys.readouterr().err
    assert "chat-h100" in err and "Traceback" not in err
    assert main(["run", "--rate", "nosuchclass=3"]) == 2
    assert "unknown class 'nosuchclass'" in capsys.readouterr().err


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "scenarios:" in out and "H100-SXM" in out and "llama-3.1-8b" in out


def test_network_worked_example(tmp_path, capsys):
    path = tmp_path / "result.json"
    assert main(["network", "--method", "exact", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "throughput [1/s]" in out and "method: mixed+exact-mva" in out
    data = json.loads(path.read_text())
    assert data["attrs"]["method"] == "mixed+exact-mva"


def test_bad_method_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["network", "--method", "fast"])
    assert exc.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err
