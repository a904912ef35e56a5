"""The cost of finding tickets: each criterion's test accuracy against the training and scoring
it spent (the criteria comparisons' `cost.png`), in the styling of `figures`."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ltjax.reports import stats
from ltjax.reports.figures import ACCURACY_WINDOW, Figure, bars, finish, pct, run_colors, tight, zoom

SIDE_GAP = 0.03  # the least gap between criteria of one cost each, as a fraction of the log x axis


def _side_by_side(cost: dict[str, float], step: float) -> dict[str, float]:
  """x factors for criteria of one cost each (the at-init ones: 5-7 training-step equivalents
  apiece) that would share a vertical line: each run of criteria closer than `step` (a ratio) is
  spread `step` apart around its geometric middle, in order of cost, merging runs until none is
  closer than that to the next."""
  runs = [[name] for name in sorted(cost, key=cost.get)]

  def placed(run):
    if len(run) == 1:
      return [cost[run[0]]]
    middle = math.exp(np.mean([math.log(cost[n]) for n in run]))
    return [middle * step ** (j - (len(run) - 1) / 2) for j in range(len(run))]
  merged = True
  while merged:
    merged = False
    for i in range(len(runs) - 1):
      if placed(runs[i + 1])[0] < step * placed(runs[i])[-1] * (1 - 1e-9):
        runs[i:i + 2] = [runs[i] + runs[i + 1]]
        merged = True
        break
  return {n: x / cost[n] for run in runs for n, x in zip(run, placed(run))}


def cost_figure(points: Sequence[dict[str, Any]]) -> Figure:
  """Test accuracy of each criterion's tickets against what finding them cost: the model-steps of
  training spent per trial plus scoring, in training-step equivalents (`scoring_steps`, measured by
  `benchmarks.criteria`). One line per criterion, bars = 95% interval over trials; a criterion
  with no cost measured is drawn at 1 and says so."""
  fig = Figure(figsize=(7.2, 4.4))
  ax = fig.subplots()
  unmeasured = []
  plotted = []
  names = list(dict.fromkeys(p["criterion"] for p in points))
  by_name = {name: sorted((p for p in points if p["criterion"] == name), key=lambda p: p["finding_model_steps"])
             for name in names}
  raw = {name: [p["finding_model_steps"] + p.get("scoring_steps", 0.0) for p in mine] for name, mine in by_name.items()}
  costs = {name: [max(c, 1.0) for c in cs] for name, cs in raw.items()}
  every = [c for cs in costs.values() for c in cs] or [1.0]
  step = 10 ** (SIDE_GAP * max(math.log10(max(every) / min(every)), 1.0))
  shift = _side_by_side({name: c[0] for name, c in costs.items() if min(c) == max(c)}, step)
  for name, color in zip(names, run_colors(len(names))):
    mine = by_name[name]
    if not max(raw[name]):
      unmeasured.append(name)
    x = np.array(costs[name]) * shift.get(name, 1.0)
    ivs = [stats.interval(100 * np.asarray(p["test_accuracy"])) for p in mine]
    y, lo, hi = bars(ivs)
    plotted.append((x, y, hi))
    label = name + (" (cost not measured: at 1)" if name in unmeasured else "")
    ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=label, color=color)
    for xi, yi, p in list(zip(x, y, mine))[-1:] if len(mine) > 4 else zip(x, y, mine):
      ax.annotate(pct(p['density']), (xi, yi), textcoords="offset points", xytext=(4, 4),
                  fontsize=7, color=color)
  ax.set_xscale("log")
  zoom(ax, plotted, 100 * ACCURACY_WINDOW)
  ax.set_xlabel("cost of finding the ticket, per trial: model-steps of training + scoring "
                "(training-step equivalents)")
  side = ("\ncriteria of about equal cost are set side by side (x apart by a factor of "
          f"{step:.2g} each)") if any(f != 1.0 for f in shift.values()) else ""
  finish(ax, "Test accuracy against the cost of finding the ticket; bars = 95% interval\n"
          f"labels: % of weights remaining (IMP: its sparsest round){side}",
          "test accuracy at early stop (%)")
  tight(fig)
  return fig
