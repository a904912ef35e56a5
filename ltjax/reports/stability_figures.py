"""Figures of linear mode connectivity (runs with the 'twin' control; see `ltjax.stability`).

- `path_figure`: test error along the line between a ticket and its twin, per run (rewind step)
  and round (density), mean over trials.
- `instability_figure`: the barrier against the rewind step k, one line per density, mean with
  min/max over trials: where it drops to ~0 the network is stable to SGD noise from step k on.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ltjax.reports.analysis import Run
from ltjax.reports.figures import Figure, finish, pct, tight


def stable_records(run: Run) -> list[dict]:
  return [r for r in run.records if r.get("path_error") and not r.get("diverged")]


def has_stability(runs: Sequence[Run]) -> bool:
  return any(stable_records(run) for run in runs)


def rewind_step(run: Run) -> int:
  return int(run.config.get("prune", {}).get("rewind_step", 0))


def _rounds(runs: Sequence[Run], most: int = 4) -> list[int]:
  """Rounds to show: the dense round, the last, and evenly spread ones between."""
  rounds = sorted({r["round"] for run in runs for r in stable_records(run)})
  if len(rounds) <= most:
    return rounds
  idx = np.linspace(0, len(rounds) - 1, most).round().astype(int)
  return [rounds[i] for i in sorted(set(idx))]


def _density(runs: Sequence[Run], round_index: int) -> float:
  return float(np.mean([r["density"] for run in runs for r in stable_records(run)
                        if r["round"] == round_index]))


def path_figure(runs: Sequence[Run]) -> Figure | None:
  runs = [run for run in runs if stable_records(run)]
  if not runs:
    return None
  shown = _rounds(runs)
  fig = Figure(figsize=(3.6 * len(shown), 3.4))
  axes = fig.subplots(1, len(shown), squeeze=False)[0]
  for ax, r in zip(axes, shown):
    for run in sorted(runs, key=rewind_step):
      paths = np.array([x["path_error"] for x in stable_records(run) if x["round"] == r])
      if not len(paths):
        continue
      alphas = np.linspace(0, 1, paths.shape[1])
      ax.plot(alphas, 100 * paths.mean(0), marker=".", label=f"k={rewind_step(run)}" if len(runs) > 1 else run.label)
      ax.fill_between(alphas, 100 * paths.min(0), 100 * paths.max(0), alpha=0.15)
    ax.set_xlabel("interpolation (0: ticket, 1: its twin)")
    finish(ax, f"round {r}: {pct(_density(runs, r))} remaining", "test error (%)" if ax is axes[0] else "",
            legend=ax is axes[-1], fontsize=7)
  tight(fig)
  return fig


def instability_figure(runs: Sequence[Run]) -> Figure | None:
  runs = sorted((run for run in runs if stable_records(run)), key=rewind_step)
  if len({rewind_step(run) for run in runs}) < 2:
    return None  # one k: the path figure says it all
  fig = Figure(figsize=(6.0, 4.0))
  ax = fig.subplots()
  ks = [rewind_step(run) for run in runs]
  for r in _rounds(runs, most=5):
    values = [[x["instability"] for x in stable_records(run) if x["round"] == r] for run in runs]
    keep = [i for i, v in enumerate(values) if v]
    if not keep:
      continue
    x = [ks[i] for i in keep]
    mean = np.array([100 * np.mean(values[i]) for i in keep])
    lo = mean - np.array([100 * np.min(values[i]) for i in keep])
    hi = np.array([100 * np.max(values[i]) for i in keep]) - mean
    ax.errorbar(x, mean, yerr=[lo, hi], marker="o", capsize=3,
                label=f"round {r} ({pct(_density(runs, r))})")
  ax.axhline(2.0, color="gray", lw=0.8, ls=":")  # Frankle et al. 2020 call < 2% error stable
  ax.set_xscale("symlog", linthresh=max(1, min(k for k in ks if k) if any(ks) else 1))
  ax.set_xlabel("rewind step k (the two copies fork at step k)")
  finish(ax, "Instability against the rewind step\nmean, min/max over trials; dotted: 2% barrier",
          "error barrier (% test error)", fontsize=7)
  tight(fig)
  return fig
