"""The report's figures of a run's numbers (headless matplotlib), and the styling they share.

Each figure function takes `analysis.Run`s (or cost points) and returns a matplotlib Figure;
nothing here trains or writes a report. Figures follow the paper's conventions: "percent of
weights remaining" on a reversed log axis (dense on the left), mean over trials with 95%-interval error
bars, one line per ticket kind. The masks' figures are in `mask_figures`, linear mode
connectivity in `stability_figures`, the cost of finding tickets in `cost_figures`; `summary`
renders them all into a report.
"""

from __future__ import annotations

import math
import pathlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ltjax.reports import stats  # noqa: E402
from ltjax.reports.analysis import Run, kind_label  # noqa: E402

KIND_COLORS = {"ticket": "tab:blue", "reinit": "tab:orange", "random_mask": "tab:green",
               "inverted": "tab:red", "twin": "tab:cyan", "scratch": "tab:purple",
               "twin_reinit": "tab:brown", "twin_random_mask": "tab:olive"}
KIND_MARKERS = {"ticket": "o", "reinit": "s", "random_mask": "^", "inverted": "v", "twin": "D",
                "scratch": "P", "twin_reinit": "d", "twin_random_mask": "<"}
KIND_LINES = {"ticket": "-", "reinit": ":", "random_mask": "-.", "inverted": "--", "twin": "-",
              "scratch": (0, (5, 1, 1, 1))}  # with several runs (color = run)
RUN_COLORS = ("tab:blue", "tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan", "tab:orange",
              "tab:green", "tab:pink", "tab:gray")
DPI = 120

# ---------------------------------------------------------------- shared styling
def percent_axis(ax, percents: Sequence[float]) -> None:
  """The paper's x axis: percent of weights remaining, log scale, 100 on the left."""
  percents = sorted({float(p) for p in percents if p > 0}, reverse=True)
  ax.set_xscale("log")
  width = ax.get_position().width * ax.get_figure().get_size_inches()[0]
  ax.xaxis.set_major_locator(ticker.FixedLocator(_thin(percents, min_ratio=_label_ratio(percents, width))))
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  if percents:
    ax.set_xlim(percents[0] * 1.12, percents[-1] / 1.12)  # reversed: dense on the left
  ax.set_xlabel("percent of prunable weights remaining (log scale)")


def _label_ratio(levels: Sequence[float], width_inches: float, label_inches: float = 0.34) -> float:
  """The least ratio between neighbouring ticks that leaves a label's width between them on a log
  axis `width_inches` wide spanning `levels` (merged sweeps put 7.9% beside 7.0%). The width is
  read before tight_layout widens the panels, so a third less than the label's printed width."""
  if len(levels) < 2 or width_inches <= 0:
    return 1.0
  span = max(levels) / min(levels)
  return float(span ** min(label_inches / width_inches, 1.0))


def _thin(levels: Sequence[float], most: int = 10, min_ratio: float = 1.0) -> list[float]:
  """At most `most` tick levels (descending), neighbours at least `min_ratio` apart, spaced by a
  growing ratio so labels never collide."""
  ratio = min_ratio
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


ACCURACY_FIELDS = ("test_accuracy", "final_test_accuracy")
ACCURACY_WINDOW = 0.08  # accuracy axes span at most 8 points below the best mean ...


def zoom(ax, plotted: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], window: float) -> None:
  """... so one collapsed trial or control cannot flatten every difference that matters: the y
  axis ends `window` below the highest mean, and a mean below that is marked at the axis's edge
  with its value (its bar runs off the axis)."""
  means = np.concatenate([m for _, m, _ in plotted]) if plotted else np.zeros(0)
  if not means.size or means.min() >= means.max() - window:
    return
  floor = means.max() - window
  kept_hi = [h[m >= floor] for _, m, h in plotted]
  top = max(means.max() + 0.05 * window,
            min(np.concatenate(kept_hi).max(), means.max() + 0.25 * window))
  ax.set_ylim(floor, top)
  placed: list[float] = []
  for x, mean, _ in plotted:
    for xi, m in zip(x, mean):
      if m < floor:
        n = sum(1 for p in placed if max(p, xi) / min(p, xi) < 1.6)  # stack labels that would touch
        placed.append(float(xi))
        ax.plot([xi], [floor], marker="v", color="0.2", markersize=6, clip_on=False, zorder=5)
        ax.annotate(f"{m:.1f}", (xi, floor), textcoords="offset points", xytext=(0, 5 + 9 * n),
                    ha="center", fontsize=7, color="0.2", zorder=6,  # above the lines it labels
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.8})


def pct(x: float) -> str:
  return f"{100 * x:.3g}%"


# ---------------------------------------------------------------- a, b: metric vs density
def failing_rounds(run: Run, kind: str) -> set[float]:
  """The densities (as `intervals` gives them) at which `kind` fails the early-stop rule."""
  bad = {rnd for (rnd, k), f in stats.truncation(run.records).items() if k == kind and f > stats.MAX_IN_TAIL}
  return {float(np.mean([r["density"] for r in run.records if r["round"] == rnd and r["kind"] == kind]))
          for rnd in bad}


def _hollow(ax, x, mean, rows, failing, color, marker, size) -> None:
  """White-faced markers over the points whose round fails the early-stop rule (a size larger, so
  that thin ones such as the scratch control's plus read as hollow)."""
  pick = np.array([d in failing for d, _ in rows])
  if pick.any():
    ax.plot(x[pick], mean[pick], linestyle="none", marker=marker, markersize=size + 2, markerfacecolor="white",
            markeredgecolor=color, markeredgewidth=1.2, zorder=4)


RULE_NOTE = "hollow: the early-stop rule fails (>10% of the stops in the last 5% of training)"


def metric_vs_density(runs: Sequence[Run], field: str, ylabel: str, title: str,
                      scale: float = 1.0, rule: bool = True) -> Figure:
  """`field` ('test_accuracy', 'early_stop_step') per round vs percent remaining: mean over trials
  with 95% interval bars (`stats.interval` over trials; a trial's reinit draws averaged first),
  one line per kind (and per run), the dense net (round 0) dashed; with `rule`, hollow markers
  where the kind fails the early-stop rule. More than two runs (a sweep) get a panel per kind
  instead, one color per run."""
  if len(runs) > 2:
    return _panels_per_kind(runs, field, ylabel, title, scale, rule)
  fig = Figure(figsize=(8.5, 5.2))
  ax = fig.subplots()
  multi = len(runs) > 1
  colors = run_colors(len(runs))
  series = [(i, run, kind) for i, run in enumerate(runs) for kind in run.kinds]
  percents = [100 * r["density"] for run in runs for r in run.summary]
  span = math.log(max(percents) / min(percents)) if percents else 0.0
  plotted = []
  for j, (i, run, kind) in enumerate(series):
    rows = intervals(run, kind, field)
    if not rows:
      continue
    x = np.array([100 * d for d, _ in rows])
    # Side by side (the first series in place), so overlapping error bars stay readable.
    slot = (j + 1) // 2 * (-1) ** j  # 0, -1, 1, -2, 2, ...
    dodge = math.exp(0.012 * span * slot)
    mean, lo, hi = bars([iv for _, iv in rows], scale)
    label = f"{run.label}: {kind_label(kind, [run])}" if multi else kind_label(kind, [run])
    plotted.append((x * dodge, mean, hi))
    color = colors[i] if multi else KIND_COLORS.get(kind)
    ax.errorbar(x * dodge, mean, yerr=[mean - lo, hi - mean], label=label, capsize=3,
                marker=KIND_MARKERS.get(kind, "o"), markersize=5, color=color,
                linestyle=KIND_LINES.get(kind, "-") if multi else "-", linewidth=1.5)
    if rule:
      _hollow(ax, x * dodge, mean, rows, failing_rounds(run, kind), color, KIND_MARKERS.get(kind, "o"), 5)
  for i, run in enumerate(runs):
    dense = next((r for r in run.summary if r["round"] == 0 and r["kind"] == "ticket" and r[field]), None)
    if dense:
      who = f"{run.label}: " if multi else ""
      ax.axhline(scale * dense[field]["mean"], linestyle="--", linewidth=1,
                 color=colors[i] if multi else "0.4",
                 label=f"{who}dense network (round 0, mean)")
  percent_axis(ax, percents)
  if field in ACCURACY_FIELDS:
    zoom(ax, plotted, ACCURACY_WINDOW * scale)
  counts = sorted({iv.n for run in runs for kind in run.kinds for _, iv in intervals(run, kind, field)})
  n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
  finish(ax, f"{title}\nmean over trials (n = {n} trials per point), bars = 95% interval", ylabel,
         loc="best")
  return fig


def bars(ivs: Sequence[stats.Interval], scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Means and bar ends of intervals, times `scale`; one trial has no interval: its bar is the point."""
  return tuple(np.array([scale * (getattr(iv, end) if iv.n > 1 else iv.mean) for iv in ivs])
               for end in ("mean", "lo", "hi"))


def intervals(run: Run, kind: str, field: str) -> list[tuple[float, stats.Interval]]:
  """(density, interval of `field` over trials) per round of `kind`, densest first."""
  out = []
  for rnd in sorted({r["round"] for r in run.records if r["kind"] == kind}):
    recs = [r for r in run.records if r["round"] == rnd and r["kind"] == kind]
    iv = stats.interval(stats.per_trial(recs, field).values())
    if iv.n:
      out.append((float(np.mean([r["density"] for r in recs])), iv))
  return sorted(out, key=lambda x: -x[0])


def _panels_per_kind(runs: Sequence[Run], field: str, ylabel: str, title: str, scale: float,
                     rule: bool) -> Figure:
  panels = list(dict.fromkeys(_panel(k, run) for run in runs for k in run.kinds))
  cols = min(len(panels), 3)
  nrows = math.ceil(len(panels) / cols)
  legend_rows = math.ceil(len(runs) / 4)
  fig = Figure(figsize=(4.4 * cols, 3.5 * nrows + 0.2 * legend_rows))
  axes = fig.subplots(nrows, cols, squeeze=False).ravel()
  percents = [100 * r["density"] for run in runs for r in run.summary]
  colors = shared_colors(runs)
  same = []
  for ax, (kind, key) in zip(axes, panels):
    plotted, drawn = [], {}
    members = [run for run in runs if _panel(kind, run) == (kind, key)]
    for run, color in ((run, color) for run, color in zip(runs, colors) if run in members):
      rows = intervals(run, kind, field)
      series = tuple((d, iv.mean, iv.lo, iv.hi, iv.n) for d, iv in rows)
      if not rows:
        continue
      if series in drawn:  # two sets of the same records (liu_e's tickets are liu's): drawn once
        same.append(f"{run.label}'s {kind_label(kind, [run])} = {drawn[series]}'s")
        continue
      drawn[series] = run.label
      x = np.array([100 * d for d, _ in rows])
      mean, lo, hi = bars([iv for _, iv in rows], scale)
      plotted.append((x, mean, hi))
      ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], capsize=2, marker=KIND_MARKERS.get(kind, "o"),
                  markersize=4, color=color, linewidth=1.2, label=run.label)
      if rule:
        _hollow(ax, x, mean, rows, failing_rounds(run, kind), color, KIND_MARKERS.get(kind, "o"), 4)
      dense = next((r for r in run.summary if r["round"] == 0 and r["kind"] == "ticket" and r[field]), None)
      if dense:
        ax.axhline(scale * dense[field]["mean"], linestyle="--", linewidth=0.8, color=color)
    percent_axis(ax, percents)
    if field in ACCURACY_FIELDS:
      zoom(ax, plotted, ACCURACY_WINDOW * scale)
    finish(ax, kind_label(kind, members), ylabel if ax in axes[::cols] else "", legend=False)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  legend = {label: handle for ax in axes[::-1] for handle, label in zip(*ax.get_legend_handles_labels())}
  order = [run.label for run in runs if run.label in legend]
  fig.legend([legend[x] for x in order], order, loc="lower center", ncol=min(len(runs), 4), fontsize="small")
  first, _, rest = title.partition("\n")
  same = ["identical records, drawn once: " + ", ".join(same)] if same else []
  fig.suptitle("\n".join([f"{first}: mean over trials, bars = 95% interval; dashed: each run's dense network",
                          *([rest] if rest else []), *same]))
  tight(fig, bottom=0.15 + 0.2 * legend_rows)
  return fig


def _panel(kind: str, run: Run) -> tuple[str, str]:
  # Scratch runs of different budgets (Scratch-B beside Scratch-E) are different controls: a panel each.
  return kind, kind_label(kind, [run]) if kind == "scratch" else kind


def accuracy_figure(runs: Sequence[Run]) -> Figure:
  title = "Test accuracy at the early-stop iteration"
  if any(not stats.early_stop_valid(run.records, k) for run in runs for k in run.kinds):
    title += f"\n{RULE_NOTE}: a lower bound there"
  return metric_vs_density(runs, "test_accuracy", "test accuracy at early stop (%)", title, scale=100.0)


def final_accuracy_figure(runs: Sequence[Run]) -> Figure:
  """Test accuracy at the end of training: Liu et al.'s and most pruning papers' measure, and the
  fair one where a kind is still learning when its budget ends (no early-stop rule applies)."""
  return metric_vs_density(runs, "final_test_accuracy", "test accuracy at the end of training (%)",
                           "Test accuracy at the end of training", scale=100.0, rule=False)


def early_stop_figure(runs: Sequence[Run]) -> Figure:
  failing = sorted({k for run in runs for k in run.kinds if not stats.early_stop_valid(run.records, k)})
  title = "Early-stop iteration (minimum validation loss)"
  if failing:  # the paper's speed measure says nothing where training was cut while improving
    title += f"\n{RULE_NOTE}: it says nothing there"
  fig = metric_vs_density(runs, "early_stop_step", "early-stop iteration (training steps)", title)
  for ax in fig.axes:
    ax.yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    if ax.get_ylim()[0] < 0:  # a wide t-interval of a few trials can reach below step 0, no stop can
      ax.set_ylim(bottom=0)
  return fig


# ---------------------------------------------------------------- c: training curves
def curves_figure(run: Run, rounds: Sequence[int]) -> Figure | None:
  """Validation accuracy over training for `rounds`, one panel per kind, one line per round
  (mean over trials); the dense round 0 appears in every panel for reference."""
  loaded = {r: c for r in rounds if (c := run.curves(r)) is not None}
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
    finish(ax, kind_label(kind, [run]), "validation accuracy (%)" if ax is axes[0] else "", loc="lower right")
  # Zoom from the third evaluation on: the first ones (near chance) would flatten the rest.
  starts = [m[2:] if len(m) >= 10 else m for m in means]
  values = np.concatenate([v[np.isfinite(v)] for v in starts]) if starts else np.array([])
  if values.size:
    lo, hi = values.min(), values.max()
    pad = max(0.05 * (hi - lo), 0.05)
    axes[0].set_ylim(lo - pad, min(100.0, hi + pad))
  fig.suptitle(f"{run.label}: validation accuracy during training (mean over {run.trials} trials; y axis zoomed)")
  tight(fig)
  return fig


def shared_colors(runs: Sequence[Run]) -> list:
  """`run_colors`, except that a run whose tickets are an earlier run's records (Scratch-E runs made
  from a run's masks) takes that run's color, so its control panel reads against the same line."""
  tickets = [tuple(sorted((r["round"], r["trial"], r["test_accuracy"], r["early_stop_step"])
                          for r in run.records if r["kind"] == "ticket")) for run in runs]
  owner = [next(j for j in range(i + 1) if tickets[j] == tickets[i] and tickets[i]) if tickets[i] else i
           for i in range(len(runs))]
  palette = run_colors(len(set(owner)))
  index = {o: k for k, o in enumerate(dict.fromkeys(owner))}
  return [palette[index[o]] for o in owner]


def run_colors(n: int) -> list:
  """One color per run, the same for the i-th run in every figure of a set (the accuracy and cost
  figures name a criterion by color): categorical up to 10 runs, a gradient beyond."""
  if n <= len(RUN_COLORS):
    return list(RUN_COLORS[:n])
  return [matplotlib.colormaps["viridis"](i / (n - 1)) for i in range(n)]
