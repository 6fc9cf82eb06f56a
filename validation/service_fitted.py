"""Validation of ``hermes_qn.service`` with source="fitted" against the trace summary.

Reads the shipped measurement summary (``hermes_qn/data/service_summary.csv``,
derived from the Splitwise and DistServe traces by ``python -m hermes_qn.fit``)
and writes, next to this script:

- ``service_fitted.csv`` -- predicted vs measured step time per row, error in %;
- ``service_fitted_summary.csv`` -- MAPE and max error per configuration and phase.

Regenerate with ``python validation/service_fitted.py``.

The per-configuration regressions are fitted on these very rows (in-sample);
their leave-one-point-out error is in ``hermes_qn/data/service_coefficients.json``
(``fitted_loo``). The DistServe rows are values of DistServe's own linear
formulas, which the regression's form contains, hence ~0 % there.
"""

from pathlib import Path

from hermes_qn.fit import load_summary, summarize, validation_table

HERE = Path(__file__).resolve().parent


def main() -> None:
    table = validation_table(load_summary(), "fitted", held_out=False)
    table.to_csv(HERE / "service_fitted.csv", index=False)
    summary = summarize(table)
    summary.to_csv(HERE / "service_fitted_summary.csv", index=False)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
