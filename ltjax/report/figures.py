"""The report's figures (headless matplotlib), and `write_report`: figures plus summary.md.

Each figure function takes `analysis.Run`s and returns a matplotlib Figure; nothing here trains.
Figures follow the paper's conventions: "percent of weights remaining" on a reversed log axis
(dense on the left), mean over trials with min/max error bars, one line per ticket kind.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import matplotlib.colors  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ltjax.report import analysis  # noqa: E402
from ltjax.report.analysis import KIND_LABELS, Run  # noqa: E402

KIND_COLORS = {"ticket": "tab:blue", "reinit": "tab:orange", "random_mask": "tab:green",
               "inverted": "tab:red", "twin": "tab:cyan", "scratch": "tab:purple"}
KIND_MARKERS = {"ticket": "o", "reinit": "s", "random_mask": "^", "inverted": "v", "twin": "D",
                "scratch": "P"}
KIND_LINES = {"ticket": "-", "reinit": ":", "random_mask": "-.", "inverted": "--", "twin": "-",
              "scratch": (0, (5, 1, 1, 1))}  # with several runs (color = run)
RUN_COLORS = ("tab:blue", "tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")
DPI = 120


# ---------------------------------------------------------------- shared styling
def percent_axis(ax, percents: Sequence[float]) -> None:
  """The paper's x axis: percent of weights remaining, log scale, 100 on the left."""
  percents = sorted({float(p) for p in percents if p > 0}, reverse=True)
  ax.set_xscale("log")
  ax.xaxis.set_major_locator(ticker.FixedLocator(_thin(percents)))
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  if percents:
    ax.set_xlim(percents[0] * 1.12, percents[-1] / 1.12)  # reversed: dense on the left
  ax.set_xlabel("percent of prunable weights remaining (log scale)")


def _thin(levels: Sequence[float], most: int = 10) -> list[float]:
  """At most `most` tick levels (descending), spaced by a growing ratio so labels never collide."""
  ratio = 1.0
  while True:
    kept = []
    for p in levels:
      if not kept or kept[-1] / p >= ratio:
        kept.append(p)
    if len(kept) <= most:
      return kept
    ratio *= 1.15


def finish(ax, title: str, ylabel: str, legend: bool = True, **legend_kw) -> None:
  ax.set_title(title)
  ax.set_ylabel(ylabel)
  ax.grid(True, which="major", alpha=0.35)
  if legend and ax.get_legend_handles_labels()[0]:
    ax.legend(**{"fontsize": "small", **legend_kw})


def tight(fig: Figure, bottom: float = 0.0, right: float = 1.0) -> None:
  """tight_layout with air under the suptitle (and `bottom` inches for a figure legend)."""
  height = fig.get_size_inches()[1]
  fig.tight_layout(rect=(0, bottom / height, right, 1 - 0.1 / height))


def save(fig: Figure, path: pathlib.Path) -> pathlib.Path:
  fig.savefig(path, dpi=DPI, bbox_inches="tight")
  return path


def pct(x: float) -> str:
  return f"{100 * x:.3g}%"


# ---------------------------------------------------------------- a, b: metric vs density
def metric_vs_density(runs: Sequence[Run], field: str, ylabel: str, title: str,
                      scale: float = 1.0) -> Figure:
  """`field` ('test_accuracy', 'early_stop_step') per round vs percent remaining: mean over trials
  with min/max bars, one line per kind (and per run), the dense net (round 0) dashed. More than
  two runs (a sweep) get a panel per kind instead, one color per run."""
  if len(runs) > 2:
    return _panels_per_kind(runs, field, ylabel, title, scale)
  fig = Figure(figsize=(8.5, 5.2))
  ax = fig.subplots()
  multi = len(runs) > 1
  series = [(i, run, kind) for i, run in enumerate(runs) for kind in run.kinds]
  percents = [100 * r["density"] for run in runs for r in run.summary]
  span = math.log(max(percents) / min(percents)) if percents else 0.0
  for j, (i, run, kind) in enumerate(series):
    rows = sorted((r for r in run.summary if r["kind"] == kind and r[field]),
                  key=lambda r: -r["density"])
    if not rows:
      continue
    x = np.array([100 * r["density"] for r in rows])
    # Side by side (the first series in place), so overlapping error bars stay readable.
    slot = (j + 1) // 2 * (-1) ** j  # 0, -1, 1, -2, 2, ...
    dodge = math.exp(0.012 * span * slot)
    mean, lo, hi = (np.array([scale * r[field][s] for r in rows]) for s in ("mean", "min", "max"))
    label = f"{run.label}: {KIND_LABELS.get(kind, kind)}" if multi else KIND_LABELS.get(kind, kind)
    ax.errorbar(x * dodge, mean, yerr=[mean - lo, hi - mean], label=label, capsize=3,
                marker=KIND_MARKERS.get(kind, "o"), markersize=5,
                color=RUN_COLORS[i % len(RUN_COLORS)] if multi else KIND_COLORS.get(kind),
                linestyle=KIND_LINES.get(kind, "-") if multi else "-", linewidth=1.5)
  for i, run in enumerate(runs):
    dense = next((r for r in run.summary if r["round"] == 0 and r["kind"] == "ticket" and r[field]),
                 None)
    if dense:
      who = f"{run.label}: " if multi else ""
      ax.axhline(scale * dense[field]["mean"], linestyle="--", linewidth=1,
                 color=RUN_COLORS[i % len(RUN_COLORS)] if multi else "0.4",
                 label=f"{who}dense network (round 0, mean)")
  percent_axis(ax, percents)
  counts = sorted({r["n"] - r["diverged"] for run in runs for r in run.summary if r[field]})
  n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
  finish(ax, f"{title}\nmean over trials (n = {n} per point), bars = min/max", ylabel, loc="best")
  return fig


def _panels_per_kind(runs: Sequence[Run], field: str, ylabel: str, title: str, scale: float) -> Figure:
  kinds = list(dict.fromkeys(k for run in runs for k in run.kinds))
  cols = min(len(kinds), 3)
  nrows = math.ceil(len(kinds) / cols)
  legend_rows = math.ceil(len(runs) / 4)
  fig = Figure(figsize=(4.4 * cols, 3.5 * nrows + 0.2 * legend_rows))
  axes = fig.subplots(nrows, cols, squeeze=False).ravel()
  percents = [100 * r["density"] for run in runs for r in run.summary]
  colors = [RUN_COLORS[i % len(RUN_COLORS)] if len(runs) <= len(RUN_COLORS)
            else matplotlib.colormaps["viridis"](i / (len(runs) - 1)) for i in range(len(runs))]
  for ax, kind in zip(axes, kinds):
    for run, color in zip(runs, colors):
      rows = sorted((r for r in run.summary if r["kind"] == kind and r[field]), key=lambda r: -r["density"])
      if rows:
        x = np.array([100 * r["density"] for r in rows])
        mean, lo, hi = (np.array([scale * r[field][s] for r in rows]) for s in ("mean", "min", "max"))
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], capsize=2, marker=KIND_MARKERS.get(kind, "o"),
                    markersize=4, color=color, linewidth=1.2, label=run.label)
      dense = next((r for r in run.summary if r["round"] == 0 and r["kind"] == "ticket" and r[field]), None)
      if dense:
        ax.axhline(scale * dense[field]["mean"], linestyle="--", linewidth=0.8, color=color)
    percent_axis(ax, percents)
    finish(ax, KIND_LABELS.get(kind, kind), ylabel if ax in axes[::cols] else "", legend=False)
  for ax in axes[len(kinds):]:
    ax.set_visible(False)
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=min(len(runs), 4), fontsize="small")
  fig.suptitle(f"{title}: mean over trials, bars = min/max; dashed: each run's dense network")
  tight(fig, bottom=0.15 + 0.2 * legend_rows)
  return fig


def accuracy_figure(runs: Sequence[Run]) -> Figure:
  return metric_vs_density(runs, "test_accuracy", "test accuracy at early stop (%)",
                           "Test accuracy at the early-stop iteration", scale=100.0)


def early_stop_figure(runs: Sequence[Run]) -> Figure:
  fig = metric_vs_density(runs, "early_stop_step", "early-stop iteration (training steps)",
                          "Early-stop iteration (minimum validation loss)")
  fig.axes[0].yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
  return fig


# ---------------------------------------------------------------- c: training curves
def curves_figure(run: Run, rounds: Sequence[int]) -> Figure | None:
  """Validation accuracy over training for `rounds`, one panel per kind, one line per round
  (mean over trials); the dense round 0 appears in every panel for reference."""
  loaded = {r: run.curves(r) for r in rounds}
  loaded = {r: c for r, c in loaded.items() if c is not None}
  if not loaded:
    return None
  kinds = run.kinds
  fig = Figure(figsize=(5.2 * len(kinds), 4.6))
  axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
  colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(loaded)))
  means = []
  steps = next(iter(loaded.values()))["step"][:, 0]
  log_x = len(steps) >= 10 and steps.max() >= 20 * steps.min() > 0
  for ax, kind in zip(axes, kinds):
    for color, (r, c) in zip(colors, loaded.items()):
      cols = c["kind"] == (kind if r > 0 else "ticket")
      if not cols.any():
        continue
      step = c["step"][:, cols][:, 0]
      acc = 100 * c["val_accuracy"][:, cols]
      with np.errstate(all="ignore"):
        mean = np.nanmean(acc, axis=1)
      means.append(mean)
      label = f"{pct(run.density(r))} remaining (round {r}{', dense' if r == 0 else ''})"
      ax.plot(step, mean, color=color, linewidth=1.3, label=label)
      es = [x["early_stop_step"] for x in run.records if x["round"] == r and
            x["kind"] == (kind if r > 0 else "ticket") and x["early_stop_step"] >= 0]
      if es:
        at = float(np.mean(es))
        ax.plot([at], [np.interp(at, step, mean)], marker="v", color=color, markersize=8,
                markeredgecolor="black", linestyle="none")
    ax.plot([], [], marker="v", color="white", markeredgecolor="black", linestyle="none",
            label="mean early-stop iteration")
    if log_x:  # early training, where tickets differ, gets the room
      ax.set_xscale("log")
      ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("training iteration" + (" (log scale)" if log_x else ""))
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    finish(ax, KIND_LABELS.get(kind, kind), "validation accuracy (%)" if ax is axes[0] else "",
            loc="lower right")
  # Zoom from the third evaluation on: the first ones (near chance) would flatten the rest.
  starts = [m[2:] if len(m) >= 10 else m for m in means]
  values = np.concatenate([v[np.isfinite(v)] for v in starts]) if starts else np.array([])
  if values.size:
    lo, hi = values.min(), values.max()
    pad = max(0.05 * (hi - lo), 0.05)
    axes[0].set_ylim(lo - pad, min(100.0, hi + pad))
  fig.suptitle(f"{run.label}: validation accuracy during training (mean over "
               f"{run.trials} trials; y axis zoomed)")
  tight(fig)
  return fig


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


# ---------------------------------------------------------------- the report
def cost_figure(points: Sequence[dict[str, Any]]) -> Figure:
  """Test accuracy of each criterion's tickets against the model-steps spent finding them (per
  trial; 0 for criteria at init), one line per criterion, bars = min/max over trials."""
  fig = Figure(figsize=(7.2, 4.4))
  ax = fig.subplots()
  for name in dict.fromkeys(p["criterion"] for p in points):
    mine = sorted((p for p in points if p["criterion"] == name), key=lambda p: p["finding_model_steps"])
    x = [max(p["finding_model_steps"], 1) for p in mine]
    acc = [100 * np.asarray(p["test_accuracy"]) for p in mine]
    y = [a.mean() for a in acc]
    err = [[m - a.min() for m, a in zip(y, acc)], [a.max() - m for m, a in zip(y, acc)]]
    line = ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
    for xi, yi, p in list(zip(x, y, mine))[-1:] if len(mine) > 4 else zip(x, y, mine):
      ax.annotate(pct(p['density']), (xi, yi), textcoords="offset points", xytext=(4, 4),
                  fontsize=7, color=line[0].get_color())
  ax.set_xscale("log")
  ax.set_xlabel("model-steps spent finding the ticket, per trial (at init: 1)")
  finish(ax, "Test accuracy against the cost of finding the ticket\nlabels: % of weights remaining "
          "(IMP: its sparsest round)",
          "test accuracy at early stop (%)")
  tight(fig)
  return fig


def slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def write_criteria_report(runs: Sequence[Run], points: Sequence[dict[str, Any]],
                          out: pathlib.Path | str, overlaid: bool = True,
                          log=lambda _: None) -> pathlib.Path:
  """A criteria comparison in `out`: cost.json and cost.png (`cost_figure`) and, if `overlaid`,
  every run's figures in one report (`write_report`). Returns cost.png's path."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  if overlaid:
    log(f"report: {write_report(runs, out, log=log)}")
  save(cost_figure(points), out / "cost.png")
  (out / "cost.json").write_text(json.dumps(list(points), indent=1) + "\n")
  return out / "cost.png"


def write_report(runs: Sequence[Run], out: pathlib.Path | str,
                 log=lambda _: None) -> pathlib.Path:
  """Render every figure of `runs` into `out` and write out/summary.md; returns its path."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  figures: list[tuple[str, str, str]] = []  # (heading, file name, caption)
  notes: list[str] = []

  def emit(fig, name, heading, caption, missing):
    if fig is None:
      notes.append(missing)
      log(f"skipped {name}: {missing}")
      return
    save(fig, out / name)
    figures.append((heading, name, caption))
    log(f"wrote {out / name}")

  emit(accuracy_figure(runs), "accuracy.png", "Test accuracy vs. weights remaining",
       "Test accuracy at the early-stop iteration (minimum validation loss) for each ticket kind; "
       "dashed: the dense network.", "")
  emit(early_stop_figure(runs), "early_stop.png", "Early-stop iteration vs. weights remaining",
       "Iteration of minimum validation loss: lower means the network learns faster.", "")
  from ltjax.report import stability_figures  # noqa: PLC0415 -- it builds on this module
  if stability_figures.has_stability(runs):
    emit(stability_figures.path_figure(runs), "stability_path.png", "Linear mode connectivity",
         "Test error along the straight line from each ticket to its twin (same start, another "
         "data order), mean and min/max over trials; a bump is an error barrier: unstable.", "")
    emit(stability_figures.instability_figure(runs), "instability.png",
         "Instability against the rewind step",
         "Error barrier (max error on the path minus the ends' mean) per rewind step k.",
         "instability against k skipped (needs runs at two or more rewind steps)")
  tables = []
  slugs = [slug(run.label) for run in runs]
  for i, run in enumerate(runs):
    # Per-run file names; two runs with the same name (two .../run dirs) get their index too.
    tag = "" if len(runs) == 1 else f"_{slugs[i]}" + (f"_{i}" if slugs.count(slugs[i]) > 1 else "")
    who = "" if len(runs) == 1 else f" ({run.label})"
    shown = analysis.spread(run.rounds, 4)
    emit(curves_figure(run, shown), f"curves{tag}.png", f"Validation accuracy curves{who}",
         f"Rounds {', '.join(map(str, shown))}: mean over trials per kind; triangles mark the mean "
         "early-stop iteration.", f"{run.label}: no curves/ files")
    masked = analysis.spread(run.rounds[1:], 3)
    emit(init_values_figure(run, masked), f"init_values{tag}.png",
         f"Initial values of the surviving weights{who}",
         "Distribution of θ₀ of the weights each round's winning tickets keep, per layer, "
         "against all weights (gray).",
         f"{run.label}: initial-value histograms skipped (needs rounds after 0, masks/ files, "
         "and a config whose initial weights can be rebuilt)")
    init = init_rows(run, masked)
    emit(input_connectivity_figure(run, masked), f"input_connectivity{tag}.png",
         f"Input connectivity{who}",
         "Share of each input pixel's first-layer connections that survive: where on the image "
         "the winning tickets look.",
         f"{run.label}: input connectivity skipped (needs rounds after 0 with masks/ files, and a "
         "dense first layer on a dataset of known image shape)")
    pruned = [r for r in run.rounds[1:] if (run.workdir / "masks" / f"round_{r:02d}.npz").exists()]
    last = pruned[-1] if pruned else None  # the dense round 0 has nothing to show
    emit(None if last is None else connectivity_figure(run, last), f"connectivity{tag}.png",
         f"Per-unit connectivity{who}",
         f"Round {last}: surviving incoming/outgoing connections per hidden unit against a random "
         "mask with the same per-layer density.",
         f"{run.label}: connectivity skipped (needs a pruned round with masks/ files and "
         "consecutive dense layers)")
    overlap, connectivity = mask_rows(run)
    emit(overlap_figure(run, overlap), f"mask_overlap{tag}.png",
         f"Mask overlap between trials{who}",
         "Jaccard index between the masks of different trials (different θ₀) against the overlap "
         "two random masks of the same density would have.",
         f"{run.label}: mask overlap skipped (needs at least 2 trials and a pruned round with "
         "masks/ files)")
    tables.append((overlap, connectivity, init))
  path = out / "summary.md"
  path.write_text(summary_markdown(runs, figures, notes, tables))
  log(f"wrote {path}")
  return path


def init_rows(run: Run, rounds: Sequence[int]) -> list[dict[str, Any]]:
  """Per round and layer: survivors' init statistics (see analysis.value_stats)."""
  init = run.init_params
  if init is None:
    return []
  rows = []
  for r in rounds:
    masks = run.masks(r)
    for layer in (run.layers if masks is not None else []):
      if layer in init and layer in masks:
        stats = analysis.value_stats(analysis.survivors(init[layer], masks[layer]), init[layer])
        rows.append({"round": r, "layer": layer, "kept": float(masks[layer].mean()), **stats})
  return rows


# ---------------------------------------------------------------- summary.md
def summary_markdown(runs: Sequence[Run], figures, notes, tables) -> str:
  """summary.md: per run the config and the per-round table, then the figures, then details."""
  lines = ["# Lottery-ticket report", "",
           "Workdirs: " + ", ".join(f"`{run.workdir}` ({run.label})" for run in runs), ""]
  for run in runs:
    lines += [f"## {run.label}", "", *config_lines(run), "", "### Results per round", "",
              round_table(run), "",
              "Cells: mean over trials (min–max). Early-stop iteration = training step of minimum "
              "validation loss; test accuracy is measured there.", ""]
  lines += ["## Figures", ""]
  for heading, name, caption in figures:
    lines += [f"### {heading}", "", f"![{heading}]({name})", "", caption, ""]
  if any(notes):
    lines += ["Not drawn:", ""] + [f"- {n}" for n in notes if n] + [""]
  lines += ["## Details", ""]
  for run, (overlap, connectivity, init) in zip(runs, tables):
    who = "" if len(runs) == 1 else f" ({run.label})"
    if init:
      lines += [f"### Initial values of the surviving weights{who}", "",
                "mean |θ₀| of the kept weights relative to all weights of the layer (×1.00 = a "
                "random subset), and the share of kept weights within σ₀/2 of zero (all weights: ~"
                f"{100 * init[0]['near_zero_reference']:.0f}%).", "",
                "| round | layer | % of layer kept | mean θ₀ | mean \\|θ₀\\| vs all | near zero |",
                "|---:|---|---:|---:|---:|---:|"]
      lines += [f"| {x['round']} | {x['layer']} | {100 * x['kept']:.2f} | {x['mean']:+.4f} | "
                f"×{x['abs_ratio']:.2f} | {100 * x['near_zero']:.1f}% |" for x in init]
      lines.append("")
    layers = list(dict.fromkeys(x["layer"] for x in overlap))
    if overlap:
      by = {(x["round"], x["layer"]): x for x in overlap}
      lines += [f"### Mask overlap between trials{who}", "",
                "Jaccard index, mean over trial pairs / chance level d/(2−d) at the layer's "
                "density.",
                "", "| round | " + " | ".join(layers) + " |", "|---:|" + "---:|" * len(layers)]
      for r in sorted({x["round"] for x in overlap}):
        cells = [f"{by[r, k]['mean']:.3f} / {by[r, k]['chance']:.3f}" if (r, k) in by else ""
                 for k in layers]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
      lines.append("")
    if connectivity:
      units = list(dict.fromkeys(x["layer"] for x in connectivity))
      by = {(x["round"], x["layer"]): x for x in connectivity}
      lines += [f"### Hidden units cut off{who}", "",
                "Units with no surviving incoming or no surviving outgoing connection (they cannot "
                "affect the output), mean over trials.", "",
                "| round | " + " | ".join(f"{k.removesuffix('/kernel')} units" for k in units)
                + " |",
                "|---:|" + "---:|" * len(units)]
      for r in sorted({x["round"] for x in connectivity}):
        cells = [f"{by[r, k]['dead']:.1f} of {by[r, k]['units']}" if (r, k) in by else ""
                 for k in units]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
      lines.append("")
  return "\n".join(lines)


def config_lines(run: Run) -> list[str]:
  """The config essentials as markdown bullets."""
  c = run.config
  if not c:
    return ["(no config.json)"]
  t, p = c.get("train", {}), c.get("prune", {})
  total = 1 + (p.get("rounds", 0) if p.get("mode", "iterative") == "iterative" else len(p.get("densities", ())))
  mode, densities = p.get("mode", "iterative"), ", ".join(f"{d:g}" for d in p.get("densities", ()))
  if mode == "at_init":
    pruning = (f"at initialization by {p.get('score')} ({p.get('scope')}) to densities {densities}, "
               "each round from theta_0")
  elif mode == "early_bird":
    pruning = (f"early-bird: the {p.get('scope')} magnitude mask of dense training once it settles "
               f"(Hamming distance < {p.get('early_bird_threshold')} for "
               f"{p.get('early_bird_patience')} checks) at densities {densities}")
  elif mode == "oneshot":
    pruning = (f"one-shot {p.get('score')} pruning of the trained dense net ({p.get('scope')}) to "
               f"densities {densities}")
  else:
    pruning = (f"iterative magnitude pruning ({p.get('scope')}, score {p.get('score')}): "
               f"conv {p.get('conv_rate')}, fc {p.get('fc_rate')}, output {p.get('output_rate')} "
               "per round")
  if p.get("rewind_step"):
    pruning += f", rewind to step {p['rewind_step']}"
  controls = ", ".join(KIND_LABELS.get(k, k) for k in c.get("controls", ()) if k) or "none"
  return [f"- model: `{c.get('model')}` on `{c.get('dataset')}` (config `{c.get('name')}`)",
          f"- training: {t.get('optimizer')} lr {t.get('lr')}, batch {t.get('batch_size')}, "
          f"{t.get('steps'):,} iterations per round, validation every {t.get('eval_every')}",
          f"- pruning: {pruning}",
          f"- trials: {c.get('trials')}, seed {c.get('seed')}; controls: {controls} "
          f"(reinit draws {c.get('reinit_draws')})",
          f"- rounds finished: {len(run.rounds)} of {total} (down to "
          f"{pct(run.density(run.rounds[-1]))} of weights remaining)"]


def _cell(stat: dict | None, scale: float, fmt: str) -> str:
  if stat is None:
    return "–"
  return f"{format(scale * stat['mean'], fmt)} ({format(scale * stat['min'], fmt)}–" \
         f"{format(scale * stat['max'], fmt)})"


def round_table(run: Run) -> str:
  """Markdown: per round, percent remaining and per kind early-stop iteration and test accuracy."""
  kinds = run.kinds
  head = ["round", "% remaining"]
  for k in kinds:
    head += [f"{KIND_LABELS.get(k, k)}: early-stop it.", f"{KIND_LABELS.get(k, k)}: test acc. %"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
  by = {(r["round"], r["kind"]): r for r in run.summary}
  for rnd in run.rounds:
    cells = [str(rnd), f"{100 * run.density(rnd):.2f}"]
    for k in kinds:
      row = by.get((rnd, k))
      if row is None:
        cells += ["", ""]
        continue
      div = f" ({row['diverged']}/{row['n']} diverged)" if row["diverged"] else ""
      cells += [_cell(row["early_stop_step"], 1, ".0f") + div,
                _cell(row["test_accuracy"], 100, ".2f")]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
