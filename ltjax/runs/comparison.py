"""Every way of finding a ticket on one footing: the configs that compare IMP, one-shot magnitude,
at-init scores (SNIP, GraSP, SynFlow) and early-bird tickets at the same densities with the same
controls, and the cost of each ticket (test accuracy against the training spent finding its mask).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ltjax import wiring
from ltjax.core import tickets

METHODS = ("imp", "oneshot", "snip", "grasp", "synflow", "early_bird")
MAX_IMP_ROUNDS = 60


def config_for(base, method: str, densities: Sequence[float], sizes: Mapping[str, int],
               scope: str = "auto"):
  """`base` set to find tickets by `method` at (about) `densities`, with random reinit and random
  mask controls (and the inverted scores, for one-shot methods). `sizes`: prunable weights per
  layer role (`role_sizes`), which sets IMP's round count. ValueError if IMP cannot get there."""
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
  cfg = base.copy_and_resolve_references()
  cfg.name = f"{base.name}_{method}"
  one_shot = method not in ("imp", "early_bird")
  cfg.controls = (tickets.REINIT, tickets.RANDOM_MASK) + ((tickets.INVERTED,) if one_shot else ())
  if method == "imp":
    cfg.prune.mode = "iterative"
    cfg.prune.rounds = imp_rounds(wiring.role_rates(cfg), sizes, densities[-1])
    return cfg
  cfg.prune.mode = method if method in ("oneshot", "early_bird") else "at_init"
  cfg.prune.densities = tuple(densities)
  cfg.prune.score = method if cfg.prune.mode == "at_init" else "magnitude"
  if cfg.prune.mode == "at_init":
    cfg.prune.scope = scope
  return cfg


def imp_rounds(rates: Mapping[str, float], sizes: Mapping[str, int], density: float) -> int:
  """Rounds of IMP at per-role `rates` until the remaining fraction is within 2% of `density`."""
  total = sum(sizes.values())
  for rounds in range(1, MAX_IMP_ROUNDS + 1):
    if sum(n * (1 - rates.get(k, 0.0)) ** rounds for k, n in sizes.items()) / total <= density * 1.02:
      return rounds
  raise ValueError(f"densities: {density} takes more than {MAX_IMP_ROUNDS} rounds of IMP at these rates")


def cost_points(name: str, recs: Sequence[Mapping[str, Any]]) -> list[dict]:
  """(density, model-steps spent finding the ticket per trial, test accuracies) of each round."""
  out = []
  for r in sorted({x["round"] for x in recs if x["round"] > 0}):
    found = [x for x in recs if x["round"] == r and x["kind"] == tickets.TICKET and not x["diverged"]]
    if not found:
      continue
    out.append({"criterion": name, "round": r, "density": found[0]["density"],
                "finding_model_steps": float(np.mean([x["finding_steps"] for x in found])),
                "test_accuracy": [x["test_accuracy"] for x in found]})
  return out
