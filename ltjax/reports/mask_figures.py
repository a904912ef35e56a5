"""Figures of what the winning tickets' masks look like (headless matplotlib).

- `init_values_figure`: the survivors' initial values theta_0 against all weights', per layer.
- `mask_rows` and `overlap_figure`: how much the masks of different trials (different theta_0)
  overlap, against two random masks of the same density.
- `connectivity_figure`: surviving connections per hidden unit, against a random mask.
- `input_connectivity_figure`: where on the image a dense first layer keeps its weights.

Each takes an `analysis.Run` and returns a Figure, or None when the workdir lacks what it needs
(masks/ files, theta_0 in checkpoints/, a dense layer): the report notes the skip.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.colors
import numpy as np
from matplotlib import ticker

from ltjax.reports import analysis
from ltjax.reports.analysis import Run
from ltjax.reports.figures import KIND_COLORS, Figure, finish, pct, percent_axis, tight


# ---------------------------------------------------------------- d: initial values of survivors
def init_values_figure(run: Run, rounds: Sequence[int]) -> Figure | None:
  """Histograms of the survivors' initial values theta_0 per prunable layer at `rounds`, against
  all weights' initial values: do winning tickets keep particular initial weights?"""
  init = run.init_params
  if init is None:
    return None
  loaded = {r: run.masks(r) for r in rounds}
  loaded = {r: m for r, m in loaded.items() if m is not None}
  layers = [k for k in run.layers if k in init]
  if not loaded or not layers:
    return None
  cols = min(len(layers), 4)  # deep nets (ResNet-20: 20 layers) wrap into rows
  rows = math.ceil(len(layers) / cols)
  fig = Figure(figsize=(5.0 * cols, 4.2 * rows + 0.4))
  axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
  for ax in axes[len(layers):]:
    ax.set_visible(False)
  colors = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.85, len(loaded)))
  for n, (ax, layer) in enumerate(zip(axes, layers)):
    everything = init[layer].ravel()
    smallest = min(int(m[layer].sum()) for m in loaded.values())  # few samples: wider bins
    bins = np.linspace(everything.min(), everything.max(),
                       int(np.clip(smallest ** 0.5 / 3, 15, 60)) + 1)
    ax.hist(everything, bins=bins, density=True, color="0.8", label="all weights (100%)")
    for color, (r, m) in zip(colors, loaded.items()):
      kept = analysis.survivors(init[layer], m[layer])
      stats = analysis.value_stats(kept, everything)
      ax.hist(kept, bins=bins, density=True, histtype="step", linewidth=1.6, color=color,
              label=f"round {r}: {pct(kept.size / everything.size)} kept, "
                    f"mean|θ₀| ×{stats['abs_ratio']:.2f}")
    shape = "×".join(str(s) for s in init[layer].shape[1:])
    ax.set_xlabel("initial weight value θ₀")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    finish(ax, f"{layer.removesuffix('/kernel')} ({shape}, σ₀ = {everything.std():.3g})",
            "probability density" if n % cols == 0 else "", loc="upper left")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the legend above the histogram
  fig.suptitle(f"{run.label}: initial values of the weights the winning tickets keep "
               f"({run.trials} trials pooled; ×: mean |θ₀| relative to all weights)")
  tight(fig)
  return fig


# ---------------------------------------------------------------- e: mask overlap
def mask_rows(run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
  """One pass over every round's masks: (overlap, connectivity) rows.

  overlap: per round and prunable layer, Jaccard of the trials' ticket masks (all pairs) and the
  chance level; connectivity: per round and hidden dense layer, units cut off (mean over trials).
  """
  overlap, connectivity = [], []
  for r in run.rounds:
    masks = run.masks(r)
    if masks is None:
      continue
    kernels = {k: masks[k] for k in run.layers if k in masks}
    for layer, m in kernels.items():
      if len(m) < 2:
        continue
      j = analysis.pairwise_jaccard(m)
      d = float(m.mean())
      overlap.append({"round": r, "layer": layer, "density": run.density(r), "layer_density": d,
                      "mean": float(j.mean()), "min": float(j.min()), "max": float(j.max()),
                      "pairs": len(j), "chance": float(analysis.chance_jaccard(d))})
    trials = len(next(iter(kernels.values()))) if kernels else 0
    per_trial = [analysis.hidden_connectivity({k: v[t] for k, v in kernels.items()})
                 for t in range(trials)]
    for i, unit in enumerate(per_trial[0] if per_trial else []):
      connectivity.append({
          "round": r, "layer": unit.layer, "units": unit.incoming.size,
          "no_in": float(np.mean([(u[i].incoming == 0).sum() for u in per_trial])),
          "no_out": float(np.mean([(u[i].outgoing == 0).sum() for u in per_trial])),
          "dead": float(np.mean([u[i].dead for u in per_trial]))})
  return overlap, connectivity


def overlap_figure(run: Run, rows: Sequence[dict[str, Any]]) -> Figure | None:
  """Jaccard index between trials' masks per layer vs percent remaining, with the chance level
  (left), and the same as a multiple of chance (right), where small departures show."""
  if not any(x["round"] > 0 for x in rows):
    return None  # dense masks only: every overlap is 1
  fig = Figure(figsize=(14, 5.2))
  left, right = fig.subplots(1, 2)
  layers = [k for k in run.layers if any(x["layer"] == k for x in rows)]
  colors = (matplotlib.colormaps["tab10"].colors if len(layers) <= 10 else
            matplotlib.colormaps["viridis"](np.linspace(0, 0.95, len(layers))))
  for color, layer in zip(colors, layers):
    pts = sorted((x for x in rows if x["layer"] == layer), key=lambda x: -x["density"])
    if not pts:
      continue
    x = np.array([100 * p["density"] for p in pts])
    mean, lo, hi, chance = (np.array([p[s] for p in pts]) for s in ("mean", "min", "max", "chance"))
    name = layer.removesuffix("/kernel")
    left.errorbar(x, mean, yerr=[mean - lo, hi - mean], color=color, marker="o", markersize=4,
                  capsize=3, label=name)
    left.plot(x, chance, color=color, linestyle="--", linewidth=1)
    right.errorbar(x, mean / chance, yerr=[(mean - lo) / chance, (hi - mean) / chance],
                   color=color, marker="o", markersize=4, capsize=3, label=name)
  left.plot([], [], color="0.3", linestyle="--", linewidth=1,
            label="chance at the layer's density d: d/(2−d)")
  right.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="chance")
  pairs = rows[0]["pairs"]
  for ax in (left, right):
    percent_axis(ax, [100 * x["density"] for x in rows])
  left.set_ylim(-0.02, 1.04)
  many = {"ncol": 2, "fontsize": "x-small"} if len(layers) > 6 else {}
  finish(left, f"Jaccard index |A∩B|/|A∪B| between trials' masks\nmean over {pairs} trial "
                "pairs (bars: min/max); dashed: two random masks",
          "Jaccard index (1 = identical masks)", loc="lower left", **many)
  finish(right, "Overlap relative to chance (1 = no more than random masks)",
          "Jaccard index / chance level", loc="best", **many)
  fig.suptitle(f"{run.label}: do different trials (different θ₀) find the same winning-ticket "
               "mask?")
  tight(fig)
  return fig


# ---------------------------------------------------------------- f: connectivity
def connectivity_figure(run: Run, round_index: int, seed: int = 0) -> Figure | None:
  """Per hidden unit of the dense layers at `round_index`: surviving incoming and outgoing
  connections, against a random mask of the same per-layer density (as the random_mask control)."""
  masks = run.masks(round_index)
  if masks is None:
    return None
  kernels = {k: masks[k] for k in run.layers if k in masks}
  trials = len(next(iter(kernels.values()))) if kernels else 0
  per_trial = [analysis.hidden_connectivity({k: v[t] for k, v in kernels.items()})
               for t in range(trials)]
  if not per_trial or not per_trial[0]:
    return None
  rng = np.random.default_rng(seed)
  shuffled = [analysis.hidden_connectivity({k: rng.permutation(v[t].ravel()).reshape(v[t].shape)
                                            for k, v in kernels.items()}) for t in range(trials)]
  units = per_trial[0]
  fig = Figure(figsize=(11, 3.8 * len(units)))
  axes = np.atleast_2d(fig.subplots(len(units), 2))
  density = run.layer_density(round_index)
  for row, unit in enumerate(units):
    name = unit.layer.removesuffix("/kernel")
    for col, (which, fan, source) in enumerate((("incoming", unit.fan_in, unit.layer),
                                                ("outgoing", unit.fan_out, unit.next_layer))):
      ax = axes[row, col]
      ticket = np.concatenate([getattr(u[row], which) for u in per_trial])
      random = np.concatenate([getattr(u[row], which) for u in shuffled])
      ax.hist(ticket, bins=_count_bins(ticket, random), color=KIND_COLORS["ticket"], alpha=0.75,
              label="winning tickets")
      ax.hist(random, bins=_count_bins(ticket, random), histtype="step", color="black",
              linewidth=1.3, label="random mask with the same per-layer density")
      ax.axvline(density.get(source, math.nan) * fan, color="0.3", linestyle="--", linewidth=1,
                 label="expected count: layer density × possible connections")
      dead = int(np.count_nonzero(ticket == 0))
      ax.text(0.02, 0.95, f"units with none: {dead} of {ticket.size}", transform=ax.transAxes,
              va="top", fontsize="small", bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
      ax.set_xlabel(f"surviving {which} connections per unit (of {fan} possible)")
      ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
      finish(ax, f"{name} units, {which} (via {source.removesuffix('/kernel')}: "
                  f"{pct(density.get(source, math.nan))} kept)",
              "number of units (trials pooled)" if col == 0 else "", legend=False)
  handles, labels = axes[0, 0].get_legend_handles_labels()
  fig.suptitle(f"{run.label}: per-unit connectivity of the hidden dense layers, round "
               f"{round_index} ({pct(run.density(round_index))} of weights remaining, "
               f"{trials} trials pooled)")
  tight(fig, bottom=0.5)
  fig.legend(handles, labels, loc="lower center", ncol=3, fontsize="small")
  return fig


def _count_bins(*counts: np.ndarray, most: int = 40) -> np.ndarray:
  """Bin edges between integers, each bin the same whole number of counts (no aliasing)."""
  lo = int(min(c.min() for c in counts))
  hi = int(max(c.max() for c in counts))
  width = max(1, math.ceil((hi - lo + 1) / most))
  return np.arange(lo, hi + width + 1, width) - 0.5


def input_connectivity_figure(run: Run, rounds: Sequence[int]) -> Figure | None:
  """For a dense first layer on images: the fraction of each input pixel's outgoing weights the
  winning tickets keep, as an image (mean over trials and channels) at `rounds`."""
  shape = analysis.INPUT_SHAPES.get(str(run.config.get("dataset", "")).split(":")[0])
  first = run.layers[0] if run.layers else None
  loaded = {r: run.masks(r) for r in rounds}
  loaded = {r: m for r, m in loaded.items() if m is not None and first in m}
  if shape is None or not loaded:
    return None
  kernel = next(iter(loaded.values()))[first]
  if kernel.ndim != 3 or kernel.shape[1] != math.prod(shape):
    return None  # not a dense layer reading the flattened image
  fig = Figure(figsize=(4.2 * len(loaded) + 1.4, 4.4))
  axes = np.atleast_1d(fig.subplots(1, len(loaded)))
  name = first.removesuffix("/kernel")
  ratios = {r: m[first].mean(axis=(0, 2)).reshape(shape).mean(axis=-1) / m[first].mean()
            for r, m in loaded.items()}  # NHWC is flattened row-major
  top = max(2.0, max(float(x.max()) for x in ratios.values()))
  norm = matplotlib.colors.TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=top)
  for ax, (r, m) in zip(axes, loaded.items()):
    image = ax.imshow(ratios[r], cmap="RdBu_r", norm=norm)
    ax.set_title(f"round {r}: {pct(float(m[first].mean()))} of {name} kept")
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row" if ax is axes[0] else "")
  fig.suptitle(f"{run.label}: how many of each input pixel's {kernel.shape[-1]} {name} connections "
               f"survive, relative to the layer average (mean over {run.trials} trials)")
  tight(fig, right=0.91)
  cax = fig.add_axes((0.925, 0.15, 0.015, 0.7))
  fig.colorbar(image, cax=cax, label="kept share / layer density (1 = average, red = more)")
  return fig
