"""Kernel-level validation of the roofline's GPU side against Vidur's GEMM profiles.

Reads the shipped Vidur summary (``hermes_qn/data/service_kernel_summary.csv``:
per-layer time of the four GEMMs of Llama-2-7B on A100 and H100 and of
Llama-3-8B on A100, TP 1-8, tokens at powers of two; derived by
``python -m hermes_qn.fit``) and writes, next to this script:

- ``service_vidur.csv`` -- measured vs predicted per row: ``roofline_s`` (catalog
  efficiencies, no launch cost), ``calibrated_s`` (efficiencies and launch cost
  fitted to the same device), ``held_out_s`` (fitted to the *other* GPU only:
  a whole-GPU holdout), each with its error in %;
- ``service_vidur_summary.csv`` -- MAPE per (model, device, tp).

Regenerate with ``python validation/service_vidur.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from hermes_qn.fit import DATA_DIR, KERNEL_SUMMARY_FILE, calibrate_kernels, predict_kernels
from hermes_qn.hardware import load_device

HERE = Path(__file__).resolve().parent


def main() -> None:
    df = pd.read_csv(DATA_DIR / KERNEL_SUMMARY_FILE)
    out = df.copy()
    roof = pd.Series(np.nan, index=df.index)
    for dev, g in df.groupby("device"):
        d = load_device(dev)
        roof[g.index] = predict_kernels({"matmul_efficiency": d.matmul_efficiency,
                                         "memory_efficiency": d.memory_efficiency,
                                         "launch_us": 0.0}, g)
    cal = pd.Series(np.nan, index=df.index)
    held = pd.Series(np.nan, index=df.index)
    for dev, g in df.groupby("device"):
        cal[g.index] = predict_kernels(calibrate_kernels(g), g)
        held[g.index] = predict_kernels(calibrate_kernels(df[df["device"] != dev]), g)
    for name, s in (("roofline", roof), ("calibrated", cal), ("held_out", held)):
        out[f"{name}_s"] = s.map(lambda v: float(f"{v:.6g}"))
        out[f"{name}_error_pct"] = (100 * (s / df["gemm_time_s"] - 1)).round(2)
    out.to_csv(HERE / "service_vidur.csv", index=False)
    summary = out.groupby(["model", "device", "tp"]).agg(
        n=("gemm_time_s", "size"),
        **{f"{n}_mape_pct": (f"{n}_error_pct", lambda e: round(float(np.mean(np.abs(e))), 2))
           for n in ("roofline", "calibrated", "held_out")}).reset_index()
    summary.to_csv(HERE / "service_vidur_summary.csv", index=False)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
