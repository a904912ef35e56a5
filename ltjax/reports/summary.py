"""The report: every figure of some runs rendered into a folder, and summary.md to read them by.

`write_report` draws the figures (`figures`, `mask_figures`, `stability_figures`) of one run or
of several overlaid, skipping with a note those a workdir lacks the files for, and writes
summary.md: per run the config and the per-round table, then the figures, then detail tables.
`report` does the same from workdir paths; `write_criteria_report` adds the criteria
comparison's cost figure. Nothing here trains.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Sequence

from ltjax.reports import analysis, cost_figures, figures, mask_figures, stability_figures, stats
from ltjax.reports.analysis import KIND_LABELS, Run, kind_label
from ltjax.reports.figures import pct, save


def slug(text: str) -> str:
  """A run label as a file-name part: runs of other characters become one '_'."""
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
  save(cost_figures.cost_figure(points), out / "cost.png")
  (out / "cost.json").write_text(json.dumps(list(points), indent=1) + "\n")
  return out / "cost.png"


def write_comparison_figures(runs: Sequence[Run], points: Sequence[dict[str, Any]] | None,
                             out: pathlib.Path | str) -> list[pathlib.Path]:
  """Committed record sets' figures in `out`: the runs overlaid (accuracy, early stop), linear mode
  connectivity where they measured it (each run's config names its rewind step), and, given
  cost `points` (a criteria comparison), the cost of each (cost.png, cost.json). Returns the
  paths written."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  paths = [save(figures.accuracy_figure(runs), out / "accuracy.png"),
           save(figures.final_accuracy_figure(runs), out / "final_accuracy.png"),
           save(figures.early_stop_figure(runs), out / "early_stop.png")]
  if stability_figures.has_stability(runs):
    paths += [save(fig, out / name) for fig, name in (
        (stability_figures.path_figure(runs), "stability_path.png"),
        (stability_figures.instability_figure(runs), "instability.png")) if fig is not None]
  if points is not None:
    paths.append(save(cost_figures.cost_figure(points), out / "cost.png"))
    (out / "cost.json").write_text(json.dumps(list(points), indent=1) + "\n")
    paths.append(out / "cost.json")
  return paths


def report(workdirs: Sequence[pathlib.Path | str], out: pathlib.Path | str,
           labels: Sequence[str] | None = None, log=lambda _: None) -> pathlib.Path:
  """Read `workdirs` (labelled by `labels`, default each workdir's name) and write their report
  into `out` (`write_report`); returns summary.md's path. ReportError for bad input."""
  # One path is one workdir (iterating a string would read each of its characters as one).
  workdirs = [workdirs] if isinstance(workdirs, (str, os.PathLike)) else list(workdirs)
  if not workdirs:
    raise analysis.ReportError("no workdirs: give the finished runs to report on")
  if labels is not None and len(labels) != len(workdirs):
    raise analysis.ReportError(f"got {len(labels)} labels for {len(workdirs)} workdirs; give one "
                               "per workdir")
  runs = [analysis.load_run(w, labels[i] if labels else None) for i, w in enumerate(workdirs)]
  return write_report(runs, out, log=log)


def write_report(runs: Sequence[Run], out: pathlib.Path | str,
                 log=lambda _: None) -> pathlib.Path:
  """Render every figure of `runs` into `out` and write out/summary.md; returns its path."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  drawn: list[tuple[str, str, str]] = []  # (heading, file name, caption)
  notes: list[str] = []

  def emit(fig, name, heading, caption, missing):
    if fig is None:
      notes.append(missing)
      log(f"skipped {name}: {missing}")
      return
    save(fig, out / name)
    drawn.append((heading, name, caption))
    log(f"wrote {out / name}")

  emit(figures.accuracy_figure(runs), "accuracy.png", "Test accuracy vs. weights remaining",
       "Test accuracy at the early-stop iteration (minimum validation loss) for each ticket kind; "
       "dashed: the dense network.", "")
  emit(figures.final_accuracy_figure(runs), "final_accuracy.png", "Final test accuracy vs. weights remaining",
       "Test accuracy after the whole budget (each kind's own: Scratch-B's is longer), the measure of "
       "Liu et al. and most pruning papers; fair where a kind is still learning when training ends.", "")
  emit(figures.early_stop_figure(runs), "early_stop.png", "Early-stop iteration vs. weights remaining",
       "Iteration of minimum validation loss: lower means the network learns faster.", "")
  if stability_figures.has_stability(runs):
    emit(stability_figures.path_figure(runs), "stability_path.png", "Linear mode connectivity",
         "Test error along the straight line from each ticket to its twin (same start, another "
         "data order), mean and min/max over trials; a bump is an error barrier: unstable.", "")
    emit(stability_figures.instability_figure(runs), "instability.png",
         "Instability against the rewind step",
         "Error barrier (max error on the path minus the ends' mean) per rewind step k.",
         "instability against k skipped (needs runs at two or more rewind steps)")
  slugs = [slug(run.label) for run in runs]
  tables = []
  for i, run in enumerate(runs):
    # Per-run file names; two runs with the same name (two .../run dirs) get their index too.
    tag = "" if len(runs) == 1 else f"_{slugs[i]}" + (f"_{i}" if slugs.count(slugs[i]) > 1 else "")
    who = "" if len(runs) == 1 else f" ({run.label})"
    tables.append(_run_figures(run, tag, who, emit))
  path = out / "summary.md"
  path.write_text(summary_markdown(runs, drawn, notes, tables))
  log(f"wrote {path}")
  return path


def _run_figures(run: Run, tag: str, who: str, emit) -> tuple[list, list, list]:
  """One run's own figures through `emit` (file names end in `tag`, headings in `who`); returns
  its detail tables (mask overlap, hidden-unit connectivity, survivors' initial values)."""
  shown = analysis.spread(run.rounds, 4)
  emit(figures.curves_figure(run, shown), f"curves{tag}.png", f"Validation accuracy curves{who}",
       f"Rounds {', '.join(map(str, shown))}: mean over trials per kind; triangles mark the mean "
       "early-stop iteration.", f"{run.label}: no curves/ files")
  masked = analysis.spread(run.rounds[1:], 3)
  emit(mask_figures.init_values_figure(run, masked), f"init_values{tag}.png",
       f"Initial values of the surviving weights{who}",
       "Distribution of θ₀ of the weights each round's winning tickets keep, per layer, "
       "against all weights (gray).",
       f"{run.label}: initial-value histograms skipped (needs rounds after 0, masks/ files, "
       "and θ₀ in checkpoints/)")
  emit(mask_figures.input_connectivity_figure(run, masked), f"input_connectivity{tag}.png",
       f"Input connectivity{who}",
       "Share of each input pixel's first-layer connections that survive: where on the image "
       "the winning tickets look.",
       f"{run.label}: input connectivity skipped (needs rounds after 0 with masks/ files, and a "
       "dense first layer on a dataset of known image shape)")
  pruned = [r for r in run.rounds[1:] if (run.workdir / "masks" / f"round_{r:02d}.npz").exists()]
  last = pruned[-1] if pruned else None  # the dense round 0 has nothing to show
  emit(None if last is None else mask_figures.connectivity_figure(run, last),
       f"connectivity{tag}.png", f"Per-unit connectivity{who}",
       f"Round {last}: surviving incoming/outgoing connections per hidden unit against a random "
       "mask with the same per-layer density.",
       f"{run.label}: connectivity skipped (needs a pruned round with masks/ files and "
       "consecutive dense layers)")
  overlap, connectivity = mask_figures.mask_rows(run)
  emit(mask_figures.overlap_figure(run, overlap), f"mask_overlap{tag}.png",
       f"Mask overlap between trials{who}",
       "Jaccard index between the masks of different trials (different θ₀) against the overlap "
       "two random masks of the same density would have.",
       f"{run.label}: mask overlap skipped (needs at least 2 trials and a pruned round with "
       "masks/ files)")
  return overlap, connectivity, init_rows(run, masked)


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
def early_stop_rule_line(run: Run) -> str:
  """Each kind's worst share of early stops in the last 5% of its training, and the verdict."""
  tails = stats.truncation(run.records)
  worst = {}
  for (_, kind), f in tails.items():
    worst[kind] = max(worst.get(kind, 0.0), f)
  if not worst:
    return "Early-stop rule: no early stops recorded."
  failing = [k for k, f in worst.items() if f > stats.MAX_IN_TAIL]
  shares = ", ".join(f"{kind_label(k, [run])} {100 * f:.0f}%" for k, f in sorted(worst.items()))
  verdict = ("passes: the early-stop iterations are evidence" if not failing else
             "FAILS for " + ", ".join(kind_label(k, [run]) for k in sorted(failing)) +
             ": training was cut while improving, so their early-stop iterations say nothing")
  return (f"Early-stop rule (at most 10% of a kind's early stops in the last 5% of its training; "
          f"worst round): {shares}; {verdict}.")



def summary_markdown(runs: Sequence[Run], drawn, notes, tables) -> str:
  """summary.md: per run the config and the per-round table, then the figures, then details."""
  lines = ["# Lottery-ticket report", "",
           "Workdirs: " + ", ".join(f"`{run.workdir}` ({run.label})" for run in runs), ""]
  for run in runs:
    lines += [f"## {run.label}", "", *config_lines(run), "", "### Results per round", "",
              round_table(run), "",
              "Cells: mean over trials (min–max). Early-stop iteration = training step of minimum "
              "validation loss; test accuracy is measured there.", "", early_stop_rule_line(run), ""]
  lines += ["## Figures", ""]
  for heading, name, caption in drawn:
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
  total = analysis.planned_rounds(c)
  mode, densities = p.get("mode", "iterative"), ", ".join(f"{d:g}" for d in p.get("densities", ()))
  if mode == "at_init":
    pruning = (f"at initialization by {p.get('score')} ({p.get('scope')}) to densities {densities}, "
               "each round from theta_0")
  elif mode == "early_bird":
    pruning = (f"early-bird: the {p.get('scope')} magnitude mask of dense training once it settles "
               f"(Hamming distance < {p.get('early_bird_threshold')} for "
               f"{p.get('early_bird_patience')} checks) at densities {densities}")
  elif mode == "gmp":
    pruning = (f"gradual magnitude pruning (Zhu & Gupta) of theta_0 from dense to densities {densities} "
               f"({p.get('distribution')} over layers, {p.get('sparsity_type')}), updated every "
               f"{p.get('update_every')} steps from {p.get('update_begin')} to {p.get('update_end')}")
  elif mode in ("set", "rigl", "static"):
    moves = ("never updated" if mode == "static" else
             f"drop fraction {p.get('drop_fraction')} (cosine) every {p.get('update_every')} steps to "
             f"{p.get('update_end')}, regrown {'at random' if mode == 'set' else 'by gradient'}")
    pruning = (f"{ {'set': 'SET', 'rigl': 'RigL', 'static': 'static random sparse'}[mode]} training from a "
               f"random {p.get('distribution')} mask at densities {densities}, {moves}")
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
          f"{pct(run.density(run.rounds[-1]))} of weights remaining)"] + (
          [f"- trained on: {'; then '.join(run.machines)}"] if run.machines else [])


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
    head += [f"{kind_label(k, [run])}: early-stop it.", f"{kind_label(k, [run])}: test acc. %"]
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
