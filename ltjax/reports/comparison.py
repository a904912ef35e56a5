"""Methods side by side (issue 21's comparison): accuracy at matched densities and the training
FLOPs each method spent to produce its network, from the records and each run's config.json.

Training FLOPs are counted as the RigL paper counts them, in units of one dense training run of
`unit_steps` steps (by default the run's own `train.steps`; a longer run, such as RigL 5x, is
counted in the shorter runs' unit), so the numbers mean the same on every device. A step costs in
proportion to the fraction of weights it trains (a sparse kernel's cost; LeNet's every weight is one
multiply-add per example, so the weight density is the FLOP density), and
- IMP: every round up to the ticket's, each at its density (the rounds that found the mask);
- one-shot: the dense training whose weights it pruned, then the sparse network's;
- SNIP, static, SET: the sparse network's training (a scoring batch or a regrowth is negligible);
- RigL: that, plus one dense gradient per update step (its dense backward pass);
- GMP: the density of every step of its schedule, dense before the first update (for `units`, the
  kept-unit fraction: an upper bound of the weight fraction);
- straight-through: a step's forward and input-gradient passes at the mask's density and its
  weight gradient dense (every weight trains), (2 d_t + 1) / 3 of a dense step at density d_t.
Masked training as ltjax runs it on CPU and GPU costs a dense step whatever the density; these
counts are what sparse kernels could save, the comparison the literature makes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ltjax.core import schedules
from ltjax.reports import selection as sel
from ltjax.reports import stats
from ltjax.reports.selection import ClaimError

TOLERANCE = 1.5  # points of density within which a round counts as "at" a column's density


def _config(records, name: str) -> dict[str, Any]:
  return records.json(f"{name}/config.json")["config"]


def _gmp_mean_density(cfg: dict[str, Any], final_density: float) -> float:
  p, steps = cfg["prune"], cfg["train"]["steps"]
  sched = schedules.Polynomial(0.0, 1.0 - final_density, p["update_begin"], p["update_end"], p["update_every"])
  at = sched.update_steps()
  dens = 1.0 - np.asarray(sched.sparsity(at), np.float64)
  edges = np.append(np.clip(at, 0, steps), steps)
  return float((edges[0] + np.sum(dens * np.diff(edges))) / steps)


def training_flops(cfg: dict[str, Any], recs: Sequence[dict[str, Any]], rnd: int,
                   unit_steps: int | None = None) -> float:
  """The mean over trials of the training FLOPs behind round `rnd`'s tickets, in dense runs of
  `unit_steps` steps (default: the run's own `train.steps`)."""
  if unit_steps is not None and (not isinstance(unit_steps, int) or unit_steps < 1):
    raise ClaimError(f"unit_steps must be a whole number of steps >= 1, got {unit_steps!r}")
  mode, steps = cfg["prune"]["mode"], cfg["train"]["steps"]
  tickets = [r for r in recs if r["kind"] == "ticket"]
  dens = {(r["trial"], r["round"]): r["density"] for r in tickets}
  trained = {(r["trial"], r["round"]): r["steps_trained"] for r in tickets}
  out = []
  for t in sorted({r["trial"] for r in tickets if r["round"] == rnd}):
    d = dens[(t, rnd)]
    if rnd == 0 or mode == "iterative":
      cost = sum(dens[(t, k)] * trained[(t, k)] for k in range(rnd + 1)) / steps
    elif mode == "oneshot":
      cost = 1.0 + d
    elif mode == "gmp":
      target = cfg["prune"]["densities"][rnd - 1]
      cost = _gmp_mean_density(cfg, target)
    elif mode == "ste":
      cost = (2.0 * _gmp_mean_density(cfg, cfg["prune"]["densities"][rnd - 1]) + 1.0) / 3.0
    elif mode == "rigl":
      p = cfg["prune"]
      updates = len(range(p["update_begin"] + p["update_every"], p["update_end"] + 1, p["update_every"]))
      cost = d + updates / steps
    elif mode in ("set", "static", "at_init"):
      cost = d
    else:
      raise ClaimError(f"no FLOP count for prune.mode={mode!r}")
    out.append(cost)
  return float(np.mean(out)) * steps / (unit_steps or steps)


def methods_table(records, rows: Sequence[Sequence[Any]], densities: Sequence[float],
                  unit_steps: int | None = None) -> str:
  """One row per (label, record set): test accuracy, mean ± the 95% half-width over trials, and
  training FLOPs (dense runs) of the round nearest each density ('—' where none is within
  TOLERANCE points; its own density shown where it is not the column's). Give `unit_steps` when
  the rows train for different numbers of steps."""
  lines = ["| method | " + " | ".join(f"~{d:g}%: acc (FLOPs)" for d in densities) + " |",
           "|---|" + "---|" * len(densities)]
  for label, name in rows:
    recs, cfg = records.get(name), _config(records, name)
    cells = []
    for d in densities:
      rnd = sel.nearest_round(recs, d, TOLERANCE)
      cells.append("\u2014" if rnd is None else
                   f"{sel.mean_cell(recs, 'ticket', rnd, d)} ({training_flops(cfg, recs, rnd, unit_steps):.2f})")
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def between(records, a: str, b: str, density: float) -> stats.Interval:
  """Test accuracy of run `a`'s tickets minus run `b`'s at `density`, paired by trial (the same seed
  draws the same θ0 in both runs)."""
  ra, rb = records.get(a), records.get(b)
  na, nb = sel.nearest_round(ra, density, TOLERANCE), sel.nearest_round(rb, density, TOLERANCE)
  if na is None or nb is None:
    raise ClaimError(f"no round near {density}% in {a if na is None else b}")
  return stats.paired(sel.kind_trials(ra, "ticket", na, "test_accuracy"),
                      sel.kind_trials(rb, "ticket", nb, "test_accuracy"))
