"""RESULTS tables generated from the records in `results/`, with intervals and the early-stop
rule, so that every figure RESULTS.md quotes has a record and a command behind it:

    python -m experiments.report --results=results      # -> results/STATS.md

Each record set (a workdir's results.jsonl, or a study's or comparison's NAME.results.jsonl)
gets a table per pruned round: density, and test accuracy and early-stop iteration differences
(mean and 95% interval over trials, `ltjax.reports.stats`), a difference marked * only where
its interval excludes 0; then each kind's share of early stops in the last 5% of its training.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Sequence

from ltjax.reports import stats
from ltjax.runs import results

OUT = "STATS.md"
UNFINISHED = "unfinished"  # results/unfinished/<run>: a run in progress (experiments/reviewer_runs.sh --keep)


def record_sets(root: pathlib.Path | str) -> list[tuple[str, list[dict[str, Any]]]]:
  """(name, records) for every record set under `root`, in name order; runs still in progress
  (UNFINISHED, carried between machines) are not results yet."""
  root = pathlib.Path(root)
  out = []
  for path in sorted(root.rglob("*results.jsonl")):
    name = _set_name(root, path)
    if name and (recs := results.read_file(path)):
      out.append((name, recs))
  return out


def _set_name(root: pathlib.Path, path: pathlib.Path) -> str | None:
  """`dir` for dir/results.jsonl, `dir/NAME` for dir/NAME.results.jsonl; None for other files and
  for runs in progress."""
  if path.name != results.RESULTS and not path.name.endswith("." + results.RESULTS):
    return None
  rel = path.parent.relative_to(root).as_posix()
  if rel.split("/")[0] == UNFINISHED:
    return None
  return rel if path.name == results.RESULTS else f"{rel}/{path.name[:-len('.' + results.RESULTS)]}"


def borrowed(root: pathlib.Path | str) -> dict[str, str]:
  """Record sets that are links to another set's file (a comparison that borrows a run's records
  instead of copying them, as criteria_20k_cpu/imp): name -> the name of the set it links to."""
  root = pathlib.Path(root)
  out = {}
  for path in sorted(root.rglob("*results.jsonl")):
    if path.is_symlink() and (name := _set_name(root, path)):
      target = path.resolve()
      inside = target.is_relative_to(root.resolve())
      out[name] = (_set_name(root.resolve(), target) if inside else None) or str(target)
  return out


def _cell(value: stats.Interval | None, scale: float, digits: int) -> str:
  if value is None:
    return ""
  return value.format(scale, digits) + (" *" if value.real else "")


def section(name: str, recs: Sequence[dict[str, Any]]) -> str:
  trials = len({r["trial"] for r in recs if r["round"] == 0})
  lines = [f"## {name}", "",
           f"{trials} trial(s); rounds 0-{max(r['round'] for r in recs)}; accuracy differences in "
           "percentage points, early-stop differences in iterations; [95% interval over trials]; "
           "* the interval excludes 0.", ""]
  acc = stats.differences(recs, "test_accuracy")
  stop = {row["round"]: row for row in stats.differences(recs, "early_stop_step")}
  present = [c for c in (f"{a}-{b}" for a, b in stats.COMPARISONS) if any(c in row for row in acc)]
  if acc:
    lines += ["| round | density | " + " | ".join(f"acc {c}" for c in present) + " | "
              + " | ".join(f"stop {c}" for c in present) + " |",
              "|---|---|" + "---|" * (2 * len(present))]
    for row in acc:
      cells = [_cell(row.get(c), 100.0, 2) for c in present]
      cells += [_cell(stop.get(row["round"], {}).get(c), 1.0, 0) for c in present]
      density = f"{row['density'] * 100:.1f}%" if math.isfinite(row["density"]) else ""
      lines.append(f"| {row['round']} | {density} | " + " | ".join(cells) + " |")
    lines.append("")
  lines += _instability(recs)
  tails = stats.truncation(recs)
  kinds = sorted({k for _, k in tails})
  worst = {k: max(f for (_, kk), f in tails.items() if kk == k) for k in kinds}
  lines.append("Early stops in the last 5% of training (worst round; the rule allows 10%): " + ", ".join(
      f"{k} {worst[k] * 100:.0f}%{'' if worst[k] <= stats.MAX_IN_TAIL else ' (fails: early-stop claims withheld)'}"
      for k in kinds) + ".")
  lines.append("")
  return "\n".join(lines)


def _instability(recs: Sequence[dict[str, Any]]) -> list[str]:
  rows = stats.instability(recs)
  present = [c for c in ("ticket", "reinit", "random_mask", "ticket-reinit", "ticket-random_mask")
             if any(c in row for row in rows)]
  if not present:
    return []
  lines = ["Instability (linear mode connectivity: the test-error barrier between a network and its "
           "twins, points; a trial's twins averaged):", "",
           "| round | density | " + " | ".join(present) + " |", "|---|---|" + "---|" * len(present)]
  lines += [f"| {row['round']} | {row['density'] * 100:.1f}% | "
            + " | ".join(_cell(row.get(c), 100.0, 2) for c in present) + " |" for row in rows]
  return lines + [""]


REFERENCES = ("imp", "random_init", "magnitude_init")


def against_reference(sets: Sequence[tuple[str, list[dict[str, Any]]]], reference: str = "imp") -> str:
  """One criterion against another: each record set's tickets minus the `reference` set's at the
  nearest density (within 5% of it, relative), test accuracy paired by trial (the sets of one
  comparison share each trial's seed, so its theta_0 and data order)."""
  ref = dict(sets).get(reference)
  if ref is None:
    return ""
  ref_rounds = {r["round"]: r["density"] for r in ref if r["kind"] == "ticket" and r["round"] > 0}
  ref_trials = lambda rnd: stats.per_trial([r for r in ref if r["round"] == rnd and r["kind"] == "ticket"],  # noqa: E731
                                           "test_accuracy")
  lines = []
  for name, recs in sets:
    if name == reference:
      continue
    cells = []
    for rnd in sorted({r["round"] for r in recs if r["round"] > 0}):
      mine = [r for r in recs if r["round"] == rnd and r["kind"] == "ticket"]
      if not mine:
        continue
      d = sum(r["density"] for r in mine) / len(mine)
      near = min(ref_rounds, key=lambda k: abs(ref_rounds[k] - d), default=None)
      if near is None or abs(ref_rounds[near] - d) > 0.05 * d:
        continue
      iv = stats.paired(stats.per_trial(mine, "test_accuracy"), ref_trials(near))
      cells.append(f"{d * 100:.1f}% (vs {ref_rounds[near] * 100:.1f}%): {_cell(iv, 100.0, 2)}")
    if cells:
      lines.append(f"| {name} | " + "; ".join(cells) + " |")
  if not lines:
    return ""
  shown = "IMP" if reference == "imp" else reference
  return "\n".join([f"| criterion | its tickets − {shown}'s, test accuracy (points) at each density "
                    "[95% interval] |", "|---|---|", *lines, ""])


def generate(root: pathlib.Path | str) -> str:
  """STATS.md's text for the record sets under `root`."""
  parts = ["# Statistics of the committed records", "",
           "Generated by `python -m experiments.report --results=results`; do not edit by hand "
           "(tests/test_tables.py regenerates it and fails on any difference).", ""]
  sets = record_sets(root)
  links = borrowed(root)
  parts += [section(name, recs) if name not in links else
            f"## {name}\n\nThe records of `{links[name]}` (a link to its file): see its section.\n"
            for name, recs in sets]
  by_dir: dict[str, list] = {}
  for name, recs in sets:
    if "/" in name:
      directory, point = name.split("/", 1)
      by_dir.setdefault(directory, []).append((point, recs))
  for directory, members in by_dir.items():
    # IMP, and Frankle et al. 2021's baselines that a criterion at init must beat to mean anything.
    tables = [t for ref in REFERENCES if (t := against_reference(members, ref))]
    if tables:
      parts += [f"## {directory}: one criterion against another", "", *tables]
  return "\n".join(parts).rstrip() + "\n"
