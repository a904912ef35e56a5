"""Record sets as the results documents see them: loading them by name, picking a round by its
density and a kind's per-trial values, and printing numbers the way RESULTS.md prints them
(`ltjax.reports.claims` builds the document's values and tables from these)."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from ltjax.reports import stats, tables

Record = Mapping[str, Any]
# "final": the test accuracy after the whole budget, the measure of papers that train a fixed
# schedule without early stopping (Liu et al. 2019).
FIELDS = {"acc": "test_accuracy", "final": "final_test_accuracy", "stop": "early_stop_step",
          "instability": "instability"}


class ClaimError(ValueError):
  """A claim that cannot be computed from the records, or whose direction does not hold."""


class Records:
  """The record sets under a results directory, loaded once."""

  def __init__(self, root: pathlib.Path | str):
    self.root = pathlib.Path(root)
    self.sets = dict(tables.record_sets(self.root))

  def get(self, name: str) -> list[dict[str, Any]]:
    if name not in self.sets:
      raise ClaimError(f"no record set {name!r} under {self.root} (have: {', '.join(sorted(self.sets))})")
    return self.sets[name]

  def json(self, path: str) -> Any:
    file = self.root / path
    if not file.is_file():
      raise ClaimError(f"no file {path!r} under {self.root}")
    return json.loads(file.read_text())


# ---------------------------------------------------------------- selecting records
def field_name(field: str) -> str:
  if field not in FIELDS:
    raise ClaimError(f"field must be one of {', '.join(FIELDS)}, got {field!r}")
  return FIELDS[field]


def pct_label(density: float) -> str:
  return f"{density * 100:.1f}"


def round_at(recs: Sequence[Record], density: float | str) -> int:
  """The round whose tickets' mean density prints as `density` percent (one decimal)."""
  want = f"{float(density):.1f}"
  found = sorted({r["round"] for r in recs if r["kind"] == "ticket"
                  and pct_label(mean_density(recs, r["round"])) == want})
  if not found:
    have = ", ".join(pct_label(mean_density(recs, n)) for n in sorted({r["round"] for r in recs}))
    raise ClaimError(f"no round at {want}% remaining (rounds at: {have})")
  return found[0]


def mean_density(recs: Sequence[Record], rnd: int) -> float:
  return float(np.mean([r["density"] for r in recs if r["round"] == rnd and r["kind"] == "ticket"]))


def kind_trials(recs: Sequence[Record], kind: str, rnd: int, field: str) -> dict[int, float]:
  """trial -> the field's mean over that trial's records of `kind` ('dense': round 0's tickets)."""
  if kind == "dense":
    kind, rnd = "ticket", 0
  mine = [r for r in recs if r["round"] == rnd and r["kind"] == kind]
  got = stats.per_trial(mine, field)
  if not got:
    lacking = mine and not any(field in r for r in mine)
    raise ClaimError(f"the {kind} records of round {rnd} have no {field}" if lacking
                     else f"no {kind} records in round {rnd}")
  return got


def kind_trials_over_dense(recs: Sequence[Record], kind: str, rnd: int, field: str) -> dict[int, float]:
  """trial -> `kind_trials` minus that trial's dense network in the same record set: what a set
  gained over its own dense network, to compare sets whose dense networks differ (machines)."""
  dense = kind_trials(recs, "dense", 0, field)
  return {t: v - dense[t] for t, v in kind_trials(recs, kind, rnd, field).items() if t in dense}


def values(recs, kind, rnd, field) -> list[float]:
  if kind == "dense":
    kind, rnd = "ticket", 0
  out = [float(r[field]) for r in recs if r["round"] == rnd and r["kind"] == kind
         and not r.get("diverged") and r.get(field) is not None and math.isfinite(r[field])]
  if not out:
    raise ClaimError(f"no {kind} records in round {rnd}")
  return out


def paired(recs, a, b, rnd, field) -> stats.Interval:
  f = field_name(field)
  return stats.paired(kind_trials(recs, a, rnd, f), kind_trials(recs, b, rnd, f))


def pruned_rounds(recs, lo: float, hi: float) -> list[int]:
  rounds = [n for n in sorted({r["round"] for r in recs if r["round"] > 0})
            if lo - 0.05 <= mean_density(recs, n) * 100 <= hi + 0.05]
  if not rounds:
    raise ClaimError(f"no pruned round between {lo}% and {hi}% remaining")
  return rounds


def nearest_round(recs, density: float, tolerance: float) -> int | None:
  """The pruned round whose density is nearest `density` (in %), within `tolerance` points."""
  pruned = sorted({r["round"] for r in recs if r["round"] > 0})
  near = [(abs(mean_density(recs, n) * 100 - density), n) for n in pruned]
  near = [x for x in near if x[0] <= tolerance]
  return min(near)[1] if near else None


def mean_cell(recs, kind: str, rnd: int, density: float, field: str = "acc") -> str:
  """'mean ± half-width' over trials of round `rnd`, and its own density where it is not `density`."""
  scale, digits = scale_of(field)
  iv = stats.interval(kind_trials(recs, kind, rnd, field_name(field)).values())
  half = "" if iv.n < 2 else f" \u00b1 {(iv.hi - iv.mean) * scale:.{digits}f}"
  here = mean_density(recs, rnd)
  at = "" if abs(here * 100 - density) < 0.05 else f" at {pct_label(here)}%"
  return f"{iv.mean * scale:.{digits}f}{half}{at}"


# ---------------------------------------------------------------- formatting
def num(x: float, digits: int) -> str:
  return f"{x:,.{digits}f}".replace("-", "\u2212")


def signed(x: float, digits: int) -> str:
  text = f"{abs(x):,.{digits}f}"
  if not float(text.replace(",", "")):
    return text  # rounds to zero: no sign
  return ("+" if x > 0 else "\u2212") + text


def scale_of(field: str) -> tuple[float, int]:
  return (1.0, 0) if field == "stop" else (100.0, 2)


def interval_text(iv: stats.Interval, scale: float, digits: int) -> str:
  """'mean [lo, hi]', each signed; a bound that rounds to 0 but is not 0 gets up to two more
  digits, so that which side of 0 it lies on (whether the difference is real) can be read."""
  def bound(x: float) -> str:
    for d in range(digits, digits + 3):
      if (text := signed(x * scale, d))[0] in "+\u2212":
        return text
    return signed(x * scale, digits)
  return f"{signed(iv.mean * scale, digits)} [{bound(iv.lo)}, {bound(iv.hi)}]"

