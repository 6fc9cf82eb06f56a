"""Token-length distributions of request classes, and the public traces they come from.

A :class:`TokenLengths` is a mean token count and a shape (a unit-mean
:class:`~hermes_qn.distributions.Distribution`): evaluate uses its first two
moments, the sampler draws from it (rounded to whole tokens, at least one).

Three named datasets ship with the package as 1000-point quantile tables
derived from public traces (``hermes_qn/data/token_lengths.json``; the traces
themselves are not shipped):

``azure-conv``, ``azure-code``
    Azure LLM inference trace 2023 (Patel et al., "Splitwise", ISCA 2024;
    CC-BY 4.0): one hour of a conversation and a coding service,
    ``ContextTokens`` (prompt) and ``GeneratedTokens`` (output).
``sharegpt``
    ShareGPT conversations filtered and tokenised with the Llama-2 tokenizer,
    as processed by Sarathi-Serve / Vidur (``num_prefill_tokens``,
    ``num_decode_tokens``).

Regenerate the table with ``python -m hermes_qn.workload --traces ../shared/traces``.
A user's own CSV is read with :func:`from_csv`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .distributions import Deterministic, Distribution, Empirical, Gamma
from .errors import ValidationError

__all__ = ["DATASETS", "TokenLengths", "dataset", "from_csv", "token_lengths"]

_TABLE = Path(__file__).parent / "data" / "token_lengths.json"
_POINTS = 1000

#: name -> (file under the traces folder, prompt column, output column, citation)
DATASETS: dict[str, tuple[str, str, str, str]] = {
    "azure-conv": ("azure-llm-inference-2023/data/AzureLLMInferenceTrace_conv.csv",
                   "ContextTokens", "GeneratedTokens",
                   "Azure LLM inference trace 2023, conversation (Patel et al., Splitwise, "
                   "ISCA 2024; CC-BY 4.0), github.com/Azure/AzurePublicDataset"),
    "azure-code": ("azure-llm-inference-2023/data/AzureLLMInferenceTrace_code.csv",
                   "ContextTokens", "GeneratedTokens",
                   "Azure LLM inference trace 2023, code (Patel et al., Splitwise, ISCA 2024; "
                   "CC-BY 4.0), github.com/Azure/AzurePublicDataset"),
    "sharegpt": ("sharegpt-sarathi/data/processed_traces/"
                 "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
                 "num_prefill_tokens", "num_decode_tokens",
                 "ShareGPT (8k filtered, Llama-2 tokenizer) as processed by Sarathi-Serve "
                 "(Agrawal et al., OSDI 2024), github.com/microsoft/sarathi-serve"),
}


@dataclass(frozen=True)
class TokenLengths:
    """A distribution of token counts per request.

    Parameters
    ----------
    mean : float
        Mean tokens, >= 0 (0 only for a stage that adds nothing).
    shape : Distribution
        Unit-mean shape (default :class:`Deterministic`: every request has
        ``mean`` tokens). ``Gamma(scv)`` for a mean and a spread,
        ``Empirical(values)`` for a trace.
    source : str
        Where the numbers come from (for reports).
    """

    mean: float
    shape: Distribution = field(default_factory=Deterministic)
    source: str = ""

    def __post_init__(self) -> None:
        m = self.mean
        if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)) \
                or not math.isfinite(m) or m < 0:
            raise ValidationError(f"TokenLengths.mean: got {m!r}; valid: a finite number of "
                                  "tokens >= 0")
        if not isinstance(self.shape, Distribution):
            raise ValidationError(f"TokenLengths.shape: got {self.shape!r}; valid: a "
                                  "hermes_qn.distributions shape (Deterministic(), Gamma(scv), "
                                  "Empirical(values), ...)")
        object.__setattr__(self, "mean", float(m))

    @classmethod
    def of(cls, mean: float, scv: float = 0.0, source: str = "") -> "TokenLengths":
        """Deterministic when ``scv == 0``, else a gamma distribution with that SCV."""
        if isinstance(scv, bool) or not isinstance(scv, (int, float)) or not math.isfinite(scv) \
                or scv < 0:
            raise ValidationError(f"TokenLengths.scv: got {scv!r}; valid: a finite number >= 0 "
                                  "(0 = every request the same)")
        return cls(mean, Deterministic() if scv == 0 else Gamma(float(scv)), source)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation, variance / mean**2."""
        return float(self.shape.scv)

    @property
    def second_moment(self) -> float:
        """E[tokens**2]."""
        return self.mean * self.mean * (1.0 + self.scv)

    def scaled(self, factor: float) -> "TokenLengths":
        """The same shape with ``factor`` times the mean."""
        return TokenLengths(self.mean * factor, self.shape, self.source)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` whole token counts, each >= 1 (>= 0 when the mean is 0)."""
        if self.mean == 0:
            return np.zeros(size, dtype=np.int64)
        x = self.shape.sample(rng, self.mean, size)
        return np.maximum(np.rint(x), 1).astype(np.int64)


def _quantile_values(values: np.ndarray) -> list[float]:
    probabilities = (np.arange(_POINTS) + 0.5) / _POINTS
    return np.quantile(values, probabilities, method="linear").round(3).tolist()


def _read_columns(path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValidationError(f"{path}: no column {missing[0]!r}; valid: one of "
                                  f"{reader.fieldnames}")
        rows = [[float(r[c]) for c in columns] for r in reader]
    if not rows:
        raise ValidationError(f"{path}: no rows; valid: a CSV with a header and data rows")
    a = np.asarray(rows, dtype=float)
    return {c: a[:, i] for i, c in enumerate(columns)}


def from_csv(path: str | Path, column: str, *, source: str | None = None) -> TokenLengths:
    """Token lengths of one column of a CSV (a header row, one request per row).

    The distribution resamples the column's values (:class:`Empirical`).
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"csv: file {str(path)!r} does not exist; valid: a path to a CSV "
                              "with a header row")
    values = _read_columns(path, (column,))[column]
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValidationError(f"{path}: column {column!r} has negative or non-finite values; "
                              "valid: token counts >= 0")
    return TokenLengths(float(values.mean()), Empirical(tuple(values.tolist())),
                        source or f"{path.name}:{column}")


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return json.loads(_TABLE.read_text())


def token_lengths(name: str, which: str) -> TokenLengths:
    """The shipped distribution of ``which`` ("prompt" or "output") in dataset ``name``."""
    table = _table()["datasets"]
    if name not in table:
        raise ValidationError(f"dataset: got {name!r}; valid: one of {tuple(sorted(table))}")
    if which not in ("prompt", "output"):
        raise ValidationError(f"dataset column: got {which!r}; valid: 'prompt' or 'output'")
    entry = table[name]
    values = tuple(entry[which])
    return TokenLengths(float(np.mean(values)), Empirical(values),
                        f"{name} {which} tokens: {entry['source']}")


def dataset(name: str) -> tuple[TokenLengths, TokenLengths]:
    """``(prompt, output)`` token lengths of a shipped dataset."""
    return token_lengths(name, "prompt"), token_lengths(name, "output")


def build_table(traces: Path) -> dict[str, Any]:
    """Quantile tables of every dataset found under ``traces``; missing ones are skipped."""
    out: dict[str, Any] = {"points": _POINTS, "note": (
        "Token-length quantiles at probabilities (i + 0.5) / points, derived from public "
        "traces by `python -m hermes_qn.workload --traces ../shared/traces`."), "datasets": {}}
    for name, (rel, prompt, output, source) in DATASETS.items():
        path = traces / rel
        if not path.is_file():
            continue
        cols = _read_columns(path, (prompt, output))
        out["datasets"][name] = {
            "source": source, "file": rel, "rows": int(len(cols[prompt])),
            "raw_mean": {"prompt": float(cols[prompt].mean()), "output": float(cols[output].mean())},
            "prompt": _quantile_values(cols[prompt]), "output": _quantile_values(cols[output])}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate hermes_qn/data/token_lengths.json "
                                     "from the public traces.")
    parser.add_argument("--traces", default="../shared/traces", help="folder of the traces")
    parser.add_argument("--out", default=str(_TABLE), help="where to write the JSON table")
    args = parser.parse_args(argv)
    table = build_table(Path(args.traces))
    if not table["datasets"]:
        raise SystemExit(f"no dataset found under {args.traces}")
    Path(args.out).write_text(json.dumps(table, indent=1) + "\n")
    for name, entry in table["datasets"].items():
        print(f"{name}: {entry['rows']} rows, mean prompt {entry['raw_mean']['prompt']:.0f}, "
              f"mean output {entry['raw_mean']['output']:.0f}")


if __name__ == "__main__":
    main()
