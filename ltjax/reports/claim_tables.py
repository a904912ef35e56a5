"""The tables a results document (RESULTS.md) may embed, recomputed from the records: per round
side by side, by density, paired differences within a record set and across two, methods with their
training cost, and the XOR record's. `ltjax.reports.claims.Claims` offers them beside its values."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ltjax.reports import comparison
from ltjax.reports import selection as sel
from ltjax.reports import stats
from ltjax.reports.selection import ClaimError, Records, pct_label, round_at


class Tables:
  """Markdown tables over the record sets of `self.records`."""

  records: Records

  @staticmethod
  def _interval(iv: stats.Interval, field: str, what: str) -> str:
    """'mean [lo, hi]' of an interval over trials; a claim on fewer than 2 trials has none."""
    if iv.n < 2:
      raise ClaimError(f"{what}: {iv.n} trial(s) in common, no interval")
    return sel.interval_text(iv, *sel.scale_of(field))

  def side_by_side(self, name: str, rounds: Sequence[int] = ()) -> str:
    """Per round: test accuracy (its mean Δ against dense ± the 95% half-width over trials) and
    early-stop iteration (% change against dense) of the ticket and each control."""
    recs = self.records.get(name)
    present = [k for k in ("ticket", "reinit", "random_mask") if any(r["kind"] == k for r in recs)]
    label = {"ticket": "winning ticket", "reinit": "random reinit", "random_mask": "random mask"}
    head = "| % remaining (round) | " + " | ".join(f"{label[k]} acc | {label[k]} early stop" for k in present) + " |"
    lines = [head, "|---|" + "---|" * (2 * len(present))]
    dense_stop = np.mean(list(sel.kind_trials(recs, "dense", 0, sel.field_name("stop")).values()))
    for rnd in rounds or sorted({r["round"] for r in recs}):
      cells = []
      for k in present:
        if rnd == 0 and k != "ticket":
          cells += ["", ""]
          continue
        acc = np.mean(list(sel.kind_trials(recs, k, rnd, sel.field_name("acc")).values()))
        stop = np.mean(list(sel.kind_trials(recs, k, rnd, sel.field_name("stop")).values()))
        if rnd == 0:
          cells += [f"{acc * 100:.2f}", sel.num(stop, 0)]
          continue
        iv = sel.paired(recs, k, "dense", rnd, "acc")
        mark = "*" if iv.real else ""
        cells += [f"{acc * 100:.2f} ({sel.signed(iv.mean * 100, 2)} \u00b1 {(iv.hi - iv.mean) * 100:.2f}{mark})",
                  f"{sel.num(stop, 0)} ({sel.signed((stop / dense_stop - 1) * 100, 0)}%)"]
      d = sel.mean_density(recs, rnd)
      lines.append(f"| {pct_label(d)} ({rnd}{', dense' if rnd == 0 else ''}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)

  def by_density(self, rows: Sequence[Sequence[Any]], densities: Sequence[float],
                 field: str = "acc") -> str:
    """One row per (label, record set, kind): mean ± the 95% half-width over trials at each density
    (the nearest round within 1 point of it; '—' where the run has none)."""
    lines = ["| | " + " | ".join(f"~{d:g}%" for d in densities) + " |",
             "|---|" + "---|" * len(densities)]
    for label, name, kind in rows:
      recs = self.records.get(name)
      cells = []
      for d in densities:
        rnd = sel.nearest_round(recs, d, 1.0)
        cells.append("\u2014" if rnd is None else sel.mean_cell(recs, kind, rnd, d, field))
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

  def diff_table(self, rows: Sequence[Sequence[Any]], densities: Sequence[float],
                 field: str = "acc") -> str:
    """One row per (label, record set, a, b): a − b with its 95% interval over trials (paired by
    trial) at each density ('—' where the run has no round there), * where it excludes 0."""
    scale, digits = sel.scale_of(field)
    lines = ["| | " + " | ".join(f"{d:g}%" for d in densities) + " |",
             "|---|" + "---|" * len(densities)]
    for label, name, a, b in rows:
      recs = self.records.get(name)
      cells = []
      for d in densities:
        try:
          rnd = round_at(recs, d)
        except ClaimError:
          cells.append("\u2014")
          continue
        iv = sel.paired(recs, a, b, rnd, field)
        cells.append(sel.interval_text(iv, scale, digits) + (" *" if iv.real else ""))
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

  def versus_table(self, rows: Sequence[Sequence[Any]], densities: Sequence[float],
                   field: str = "acc", own_dense: bool = False) -> str:
    """One row per (label, set a, kind a, set b, kind b): a − b across two record sets at each
    density (each set's nearest round within 1 point), paired by trial as `versus` (`own_dense`:
    each side's gain over its own dense network), * where its 95% interval excludes 0; '—' where
    either set has no round there."""
    f = sel.field_name(field)
    per_trial = sel.kind_trials_over_dense if own_dense else sel.kind_trials
    lines = ["| | " + " | ".join(f"~{d:g}%" for d in densities) + " |",
             "|---|" + "---|" * len(densities)]
    for label, name_a, kind_a, name_b, kind_b in rows:
      ra, rb = self.records.get(name_a), self.records.get(name_b)
      cells = []
      for d in densities:
        na, nb = sel.nearest_round(ra, d, 1.0), sel.nearest_round(rb, d, 1.0)
        if na is None or nb is None:
          cells.append("\u2014")
          continue
        iv = stats.paired(per_trial(ra, kind_a, na, f), per_trial(rb, kind_b, nb, f))
        cells.append(self._interval(iv, field, f"{name_a} against {name_b} at {d}%") + (" *" if iv.real else ""))
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

  def methods(self, rows: Sequence[Sequence[Any]], densities: Sequence[float],
              unit_steps: int | None = None) -> str:
    """Methods side by side: accuracy ± half-width and training FLOPs (`comparison.methods_table`)."""
    return comparison.methods_table(self.records, rows, densities, unit_steps)

  def between(self, a: str, b: str, density: float) -> str:
    """Run `a`'s tickets minus run `b`'s at `density`, paired by trial: 'mean [lo, hi]' in points."""
    return sel.interval_text(comparison.between(self.records, a, b, density), 100.0, 2)

  def xor_tables(self) -> str:
    data = self.records.json("xor/xor.json")
    cfg, ours, paper = data["config"], data, data["paper"]
    sizes = [str(cfg["hidden"]), *map(str, cfg["targets"])]

    def cell(o, p):
      return f"{o:.1f}" + (f" / {p:.1f}" if p is not None else "")

    lines = [f"Pruned: % of {cfg['inits']} inits (ours / paper)", "",
             "| strategy | " + " | ".join(f"{u} DB | {u} ZL" for u in sizes) + " |",
             "|---" * (1 + 2 * len(sizes)) + "|"]
    for s, row in ours["pruned"].items():
      prow = paper["pruned"].get(s, {})
      lines.append(f"| {s} | " + " | ".join(cell(row[u][m], prow.get(u, {}).get(m)) for u in sizes
                                             for m in ("db", "zl")) + " |")
    lines += ["", f"Trained from scratch: % of {cfg['inits']} inits (ours / paper)", "",
              "| units | DB | ZL |", "|---|---|---|"]
    for u, v in ours["scratch"].items():
      p = paper["scratch"].get(u, {})
      lines.append(f"| {u} | {cell(v['db'], p.get('db'))} | {cell(v['zl'], p.get('zl'))} |")
    return "\n".join(lines)
