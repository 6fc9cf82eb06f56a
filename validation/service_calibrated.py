"""Validation of ``hermes_qn.service`` with source="calibrated" against the trace summary.

Reads the shipped measurement summary (``hermes_qn/data/service_summary.csv``,
derived from the Splitwise and DistServe traces by ``python -m hermes_qn.fit``)
and writes, next to this script:

- ``service_calibrated.csv`` -- predicted vs measured step time per row, error in %;
- ``service_calibrated_summary.csv`` -- MAPE and max error per configuration and phase.

Regenerate with ``python validation/service_calibrated.py``.

Also writes ``held_out_s`` / ``held_out_error_pct``: the prediction of a
calibration refitted without the row's whole configuration (model and TP
degree), i.e. error on a configuration the fit never saw.
"""

from pathlib import Path

from hermes_qn.fit import load_summary, summarize, validation_table

HERE = Path(__file__).resolve().parent


def main() -> None:
    table = validation_table(load_summary(), "calibrated", held_out=True)
    table.to_csv(HERE / "service_calibrated.csv", index=False)
    summary = summarize(table)
    summary.to_csv(HERE / "service_calibrated_summary.csv", index=False)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
