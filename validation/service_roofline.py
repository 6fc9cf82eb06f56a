"""Validation of ``hermes_qn.service`` with source="roofline" against the trace summary.

Reads the shipped measurement summary (``hermes_qn/data/service_summary.csv``,
derived from the Splitwise and DistServe traces by ``python -m hermes_qn.fit``)
and writes, next to this script:

- ``service_roofline.csv`` -- predicted vs measured step time per row, error in %;
- ``service_roofline_summary.csv`` -- MAPE and max error per configuration and phase.

Regenerate with ``python validation/service_roofline.py``.

The pure roofline (catalog efficiencies, no per-step overhead) is a lower
bound: expect large negative errors at small batch, where fixed per-step costs
dominate.
"""

from pathlib import Path

from hermes_qn.fit import load_summary, summarize, validation_table

HERE = Path(__file__).resolve().parent


def main() -> None:
    table = validation_table(load_summary(), "roofline", held_out=False)
    table.to_csv(HERE / "service_roofline.csv", index=False)
    summary = summarize(table)
    summary.to_csv(HERE / "service_roofline_summary.csv", index=False)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
