"""Every way of finding a ticket on one footing: the configs that compare IMP, one-shot magnitude,
at-init scores (SNIP, GraSP, SynFlow) and early-bird tickets at the same densities with the same
controls, and the cost of each ticket (test accuracy against the training spent finding its mask).
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any, Mapping, Sequence

import numpy as np

from ltjax import wiring
from ltjax.core import tickets
from ltjax.runs import results

METHODS = ("imp", "oneshot", "snip", "grasp", "synflow", "early_bird", "random_init", "magnitude_init")
# Frankle et al. 2021's baselines: random pruning and magnitude pruning at initialization.
AT_INIT_SCORES = {"snip": "snip", "grasp": "grasp", "synflow": "synflow", "random_init": "random",
                  "magnitude_init": "magnitude"}
MAX_IMP_ROUNDS = 60


def config_for(base, method: str, densities: Sequence[float], sizes: Mapping[str, int],
               scope: str = "auto"):
  """`base` set to find tickets by `method` at (about) `densities`, with random reinit and random
  mask controls (and the inverted scores, for one-shot methods; none for random_init, whose every
  control is a random mask on a random init again). `sizes`: prunable weights per layer role
  (`role_sizes`), which sets IMP's round count. ValueError if IMP cannot get there."""
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
  cfg = base.copy_and_resolve_references()
  cfg.name = f"{base.name}_{method}"
  one_shot = method not in ("imp", "early_bird", "random_init")  # inverting random scores: random again
  cfg.controls = (() if method == "random_init" else
                  (tickets.REINIT, tickets.RANDOM_MASK) + ((tickets.INVERTED,) if one_shot else ()))
  if method == "imp":
    cfg.prune.mode = "iterative"
    cfg.prune.rounds = imp_rounds(wiring.role_rates(cfg), sizes, densities[-1])
    return cfg
  cfg.prune.mode = method if method in ("oneshot", "early_bird") else "at_init"
  cfg.prune.densities = tuple(densities)
  cfg.prune.score = AT_INIT_SCORES.get(method, "magnitude")
  if cfg.prune.mode == "at_init":
    cfg.prune.scope = scope
  return cfg


def scoring_costs(path: pathlib.Path) -> dict[str, float]:
  """criterion -> its scoring cost in training steps, from `benchmarks.criteria`'s JSON lines in
  `path` ({} if there is no such file); ValueError if it holds something else."""
  if not path.is_file():
    return {}
  try:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    costs = {x["criterion"]: float(x["cost_in_train_steps"]) for x in lines
             if x.get("bench") == "criterion_cost"}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"{path} is not benchmarks.criteria's output: {e}") from None
  # The benchmark times scores by their own names: random_init is the `random` score's cost.
  return costs | {name: costs[score] for name, score in AT_INIT_SCORES.items()
                  if score in costs and name not in costs}


def imp_rounds(rates: Mapping[str, float], sizes: Mapping[str, int], density: float) -> int:
  """Rounds of IMP at per-role `rates` until the remaining fraction is within 2% of `density`."""
  total = sum(sizes.values())
  for rounds in range(1, MAX_IMP_ROUNDS + 1):
    if sum(n * (1 - rates.get(k, 0.0)) ** rounds for k, n in sizes.items()) / total <= density * 1.02:
      return rounds
  raise ValueError(f"densities: {density} takes more than {MAX_IMP_ROUNDS} rounds of IMP at these rates")


def cost_points(name: str, recs: Sequence[Mapping[str, Any]], scoring_steps: float = 0.0) -> list[dict]:
  """(density, model-steps of training spent finding the ticket per trial, test accuracies) of each
  round; `scoring_steps`: what scoring and selecting the mask costs, in training steps of the same
  network (measured by `benchmarks.criteria`; 0 where not measured)."""
  out = []
  for r in sorted({x["round"] for x in recs if x["round"] > 0}):
    found = [x for x in recs if x["round"] == r and x["kind"] == tickets.TICKET and not x["diverged"]]
    if not found:
      continue
    out.append({"criterion": name, "round": r, "density": found[0]["density"],
                "finding_model_steps": float(np.mean([x["finding_steps"] for x in found])),
                "scoring_steps": float(scoring_steps),
                "test_accuracy": [x["test_accuracy"] for x in found]})
  return out


SCORING_COST = "scoring_cost.jsonl"  # benchmarks.criteria's lines, beside a committed comparison


def load_committed(root: pathlib.Path | str) -> tuple[list[tuple[str, list[dict]]], list[dict]]:
  """A committed comparison (one NAME.results.jsonl per criterion, as in results/criteria_5k):
  its (name, records) and its cost points, with the scoring costs of SCORING_COST if present."""
  root = pathlib.Path(root)
  named = [(p.name[:-len("." + results.RESULTS)], results.read_file(p))
           for p in sorted(root.glob("*." + results.RESULTS))]
  order = {m: i for i, m in enumerate(METHODS)}
  natural = lambda name: [(0, float(t), "") if re.fullmatch(r"[\d.]+", t) else (1, 0.0, t)  # noqa: E731
                          for t in re.split(r"([\d.]+)", name) if t]  # rewind_step=200 before 1000
  named = sorted(((n, recs) for n, recs in named if recs),
                 key=lambda x: (order.get(x[0], len(order)), natural(x[0])))
  if not named:
    raise ValueError(f"no NAME.{results.RESULTS} with records in {root}")
  scoring = scoring_costs(root / SCORING_COST)
  points = [p for n, recs in named for p in cost_points(n, recs, scoring.get(n, 0.0))]
  return named, points

