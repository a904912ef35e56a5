"""What the records let a reviewer claim: differences between kinds of tickets with 95% intervals
over trials, and whether a run's early stops mean anything at its schedule.

- `interval`: mean and a Student-t 95% interval of a sample (trials are the unit: a trial's
  reinit draws are averaged first, so draws do not pass for independent trials).
- `differences`: per pruned round, ticket - dense, reinit - dense, random_mask - dense (each
  trial against its own dense net), ticket - reinit and ticket - random_mask (paired by trial),
  and the inverted and scratch controls'. A difference is `real` only when its interval excludes 0.
- `instability`: per round, the error barrier of linear mode connectivity per kind (`path_records`)
  and the ticket's against the controls', paired by trial.
- `truncation`: per round and kind, the fraction of early stops in the last 5% of the iterations
  the ticket trained. Above 10%, training was cut while still improving: the early-stop
  iteration (the paper's speed measure) says nothing there, and `early_stop_valid` is False.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from ltjax.core.tickets import TWINS

CONFIDENCE = 0.95
TAIL = 0.05          # the last 5% of a ticket's iterations ...
MAX_IN_TAIL = 0.10   # ... may hold at most 10% of its kind's early stops
Record = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Interval:
  mean: float
  lo: float
  hi: float
  n: int

  @property
  def real(self) -> bool:
    """The interval excludes 0 (it needs at least 2 trials to exist)."""
    return self.n >= 2 and (self.lo > 0 or self.hi < 0)

  def format(self, scale: float = 100.0, digits: int = 2) -> str:
    if self.n < 2:
      return f"{self.mean * scale:+.{digits}f} (n={self.n})"
    return f"{self.mean * scale:+.{digits}f} [{self.lo * scale:+.{digits}f}, {self.hi * scale:+.{digits}f}]"


def interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
  """Mean and the Student-t interval of the mean (NaN bounds with fewer than 2 values)."""
  x = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
  if x.size == 0:
    return Interval(math.nan, math.nan, math.nan, 0)
  mean = float(x.mean())
  if x.size < 2:
    return Interval(mean, math.nan, math.nan, 1)
  half = float(scipy_stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
  return Interval(mean, mean - half, mean + half, int(x.size))


def per_trial(recs: Sequence[Record], field: str) -> dict[int, float]:
  """trial -> the field's mean over that trial's records (its reinit draws), diverged ones skipped."""
  values: dict[int, list[float]] = defaultdict(list)
  for r in recs:
    v = r.get(field)
    if v is not None and not r.get("diverged") and math.isfinite(v):
      values[r["trial"]].append(float(v))
  return {t: float(np.mean(v)) for t, v in values.items()}


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Interval:
  """The interval of a - b over the trials both have."""
  return interval(a[t] - b[t] for t in sorted(set(a) & set(b)))


COMPARISONS = (("ticket", "dense"), ("reinit", "dense"), ("random_mask", "dense"),
               ("ticket", "reinit"), ("ticket", "random_mask"), ("ticket", "inverted"), ("inverted", "dense"),
               ("ticket", "scratch"), ("scratch", "dense"))


def path_records(recs: Sequence[Record], kind: str | None = None) -> list[Record]:
  """Records holding a linear-mode-connectivity path, one per twin, of the networks of `kind` (a
  twin's partner: ticket, reinit, random_mask; None: all). Older records hold the path on the
  partner's row only (a lottery run writes the first twin's path there too)."""
  paths = [r for r in recs if r.get("path_error") and not r.get("diverged")]
  out = []
  for partner in ([kind] if kind else sorted(set(TWINS.values()))):
    own = [r for r in paths if TWINS.get(r["kind"]) == partner]
    out += own or [r for r in paths if r["kind"] == partner and r.get("draw", 0) == 0]
  return out


def instability(recs: Sequence[Record]) -> list[dict[str, Any]]:
  """Per round holding paths: the instability (error barrier) of each kind, a trial's twins
  averaged, as an `Interval` over trials, and the ticket's against each control's, paired."""
  rows = []
  for rnd in sorted({r["round"] for r in path_records(recs)}):
    here = [r for r in recs if r["round"] == rnd]
    kinds = {k: per_trial(path_records(here, k), "instability") for k in ("ticket", "reinit", "random_mask")}
    row: dict[str, Any] = {"round": rnd, "density": float(np.mean([r["density"] for r in path_records(here)]))}
    row.update({k: interval(v.values()) for k, v in kinds.items() if v})
    row.update({f"ticket-{k}": paired(kinds["ticket"], kinds[k]) for k in ("reinit", "random_mask")
                if kinds["ticket"] and kinds[k]})
    rows.append(row)
  return rows


def differences(recs: Sequence[Record], field: str = "test_accuracy") -> list[dict[str, Any]]:
  """Per pruned round: its density and an `Interval` per comparison of COMPARISONS that the
  records hold (keyed 'ticket-dense', ...)."""
  dense = per_trial([r for r in recs if r["round"] == 0 and r["kind"] == "ticket"], field)
  rows = []
  for rnd in sorted({r["round"] for r in recs if r["round"] > 0}):
    here = [r for r in recs if r["round"] == rnd]
    kinds = {k: per_trial([r for r in here if r["kind"] == k], field)
             for k in {r["kind"] for r in here}}
    kinds["dense"] = dense
    tickets = [r for r in here if r["kind"] == "ticket"]
    row = {"round": rnd, "density": float(np.mean([r["density"] for r in tickets])) if tickets else math.nan}
    for a, b in COMPARISONS:
      if kinds.get(a) and kinds.get(b):
        row[f"{a}-{b}"] = paired(kinds[a], kinds[b])
    rows.append(row)
  return rows


def truncation(recs: Sequence[Record], tail: float = TAIL) -> dict[tuple[int, str], float]:
  """(round, kind) -> the fraction of its early stops in the last `tail` of its iterations.

  A record trained `steps_trained` iterations ending at the run's last step: round 0 and every
  kind but scratch end where round 0's tickets end (rewound rounds start at k, as much later as
  they are shorter); scratch, a fresh network, trains its own budget from step 0.
  """
  full = max((r["steps_trained"] for r in recs if r["round"] == 0), default=None)
  out = {}
  groups: dict[tuple[int, str], list[Record]] = defaultdict(list)
  for r in recs:
    groups[(r["round"], r["kind"])].append(r)
  for (rnd, kind), rs in sorted(groups.items()):
    stops = []
    for r in rs:
      if r.get("early_stop_step") is None or r["early_stop_step"] < 0:
        continue
      ticket_steps = next((x["steps_trained"] for x in groups.get((rnd, "ticket"), [])), r["steps_trained"])
      start = (full - ticket_steps) if full is not None and rnd > 0 and kind != "scratch" else 0
      end = start + r["steps_trained"]
      stops.append(r["early_stop_step"] >= end - tail * r["steps_trained"])
    if stops:
      out[(rnd, kind)] = float(np.mean(stops))
  return out


def early_stop_valid(recs: Sequence[Record], kind: str, tail: float = TAIL,
                     max_in_tail: float = MAX_IN_TAIL) -> bool:
  """Whether every round's early stops of `kind` pass the rule (at most 10% in the last 5%)."""
  fractions = [f for (_, k), f in truncation(recs, tail).items() if k == kind]
  return bool(fractions) and max(fractions) <= max_in_tail
