"""Figures of linear mode connectivity (runs with the 'twin' controls; see `ltjax.stability`).

- `path_figure`: test error along the line between a network and its twin, one row per kind of
  network (the ticket, and the reinit and random-mask controls where they have twins), one column
  per round (density), one line per run (rewind step): mean over trials with its 95% interval.
- `instability_figure`: the barrier against the rewind step k, one panel per kind, one line per
  density, mean with its 95% interval over trials: where it drops to ~0 the network is stable to
  SGD noise from step k on.

A trial's twins (several data orders) are averaged first, so trials are the unit of the interval.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from ltjax.core import tickets
from ltjax.reports import stats
from ltjax.reports.analysis import Run
from ltjax.reports.figures import Figure, finish, pct, tight

LABELS = {tickets.TICKET: "ticket", tickets.REINIT: "random reinit", tickets.RANDOM_MASK: "random mask"}


def stable_records(run: Run, kind: str | None = None) -> list[dict]:
  """The run's records holding a path, one per twin, of the networks of `kind` (None: all)."""
  return stats.path_records(run.records, kind)


def has_stability(runs: Sequence[Run]) -> bool:
  return any(stable_records(run) for run in runs)


def rewind_step(run: Run) -> int:
  return int(run.config.get("prune", {}).get("rewind_step", 0))


def _kinds(runs: Sequence[Run]) -> list[str]:
  return [k for k in LABELS if any(stable_records(run, k) for run in runs)]


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


def _per_trial(run: Run, kind: str, round_index: int, field: str) -> list[np.ndarray]:
  """The field (a path, or the barrier) of each trial, its twins averaged."""
  by_trial = defaultdict(list)
  for r in stable_records(run, kind):
    if r["round"] == round_index:
      by_trial[r["trial"]].append(np.asarray(r[field], np.float64))
  return [np.mean(v, axis=0) for _, v in sorted(by_trial.items())]


def _band(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Mean and 95% interval over trials, pointwise (the mean alone, as its own band, for 1 trial)."""
  x = np.array(values, np.float64).reshape(len(values), -1)  # [trials, points]
  ivs = [stats.interval(col) for col in x.T]
  mean, lo, hi = (np.array([getattr(iv, end) for iv in ivs]) for end in ("mean", "lo", "hi"))
  return mean, np.where(np.isfinite(lo), lo, mean), np.where(np.isfinite(hi), hi, mean)


def path_figure(runs: Sequence[Run]) -> Figure | None:
  runs = sorted((run for run in runs if stable_records(run)), key=rewind_step)
  if not runs:
    return None
  shown, kinds = _rounds(runs), _kinds(runs)
  fig = Figure(figsize=(3.6 * len(shown), 3.0 * len(kinds) + 0.4))
  grid = fig.subplots(len(kinds), len(shown), squeeze=False)
  for row, kind in zip(grid, kinds):
    for ax, r in zip(row, shown):
      drawn = False
      for i, run in enumerate(runs):
        paths = _per_trial(run, kind, r, "path_error")
        if not paths:
          continue
        mean, lo, hi = _band(paths)
        alphas = np.linspace(0, 1, mean.size)
        ax.plot(alphas, 100 * mean, marker=".", ms=3, color=f"C{i}",
                label=f"k={rewind_step(run)}" if len(runs) > 1 else run.label)
        ax.fill_between(alphas, 100 * lo, 100 * hi, color=f"C{i}", alpha=0.15)
        drawn = True
      if not drawn:  # the dense round has no controls
        ax.axis("off")
        ax.text(0.5, 0.5, f"no {LABELS[kind]} in round {r}", ha="center", va="center", fontsize=8,
                transform=ax.transAxes, color="gray")
        continue
      ax.set_xlabel(f"interpolation (0: {LABELS[kind]}, 1: its twin)")
      finish(ax, f"{LABELS[kind]}, round {r}: {pct(_density(runs, r))} remaining",
             "test error (%)" if ax is row[0] else "", legend=ax is grid[0][-1], fontsize=7)
  fig.suptitle("Linear mode connectivity: mean over trials, 95% interval shaded", fontsize=9)
  tight(fig)
  return fig


def instability_figure(runs: Sequence[Run]) -> Figure | None:
  runs = sorted((run for run in runs if stable_records(run)), key=rewind_step)
  if len({rewind_step(run) for run in runs}) < 2:
    return None  # one k: the path figure says it all
  kinds, ks = _kinds(runs), [rewind_step(run) for run in runs]
  fig = Figure(figsize=(5.2 * len(kinds), 4.0))
  axes = fig.subplots(1, len(kinds), squeeze=False, sharey=True)[0]
  for ax, kind in zip(axes, kinds):
    for i, r in enumerate(_rounds(runs, most=5)):  # a round keeps its color in every panel
      bands = [(k, _band(values)) for k, run in zip(ks, runs)
               if (values := _per_trial(run, kind, r, "instability"))]
      if not bands:
        continue
      x = [k for k, _ in bands]
      mean, lo, hi = (np.array([band[part][0] for _, band in bands]) for part in range(3))
      ax.errorbar(x, 100 * mean, yerr=[100 * (mean - lo), 100 * (hi - mean)], marker="o", capsize=3, color=f"C{i}",
                  label=f"round {r} ({pct(_density(runs, r))})")
    ax.axhline(2.0, color="gray", lw=0.8, ls=":")  # Frankle et al. 2020 call < 2% error stable
    ax.set_xscale("symlog", linthresh=max(1, min(k for k in ks if k) if any(ks) else 1))
    ax.set_xlabel("rewind step k (the two copies fork at step k)")
    finish(ax, f"{LABELS[kind]}: instability against the rewind step\nmean, 95% interval over trials; "
           "dotted: 2% barrier", "error barrier (% test error)" if ax is axes[0] else "", fontsize=7)
  tight(fig)
  return fig
