"""The numbers of a results document (RESULTS.md), recomputed from the records in `results/`.

A document holds two kinds of generated text, each marked by HTML comments that do not render:

    <!--c:diff("lenet", "ticket", "dense", 21.1)-->+0.51 [+0.31, +0.67]<!--/c-->     one value
    <!--table:criteria("criteria_5k", "criteria_5k_global")-->                        a table
    ...
    <!--/table-->

`render` recomputes every marked value and table from the records and returns the document with
them replaced; the test of the committed RESULTS.md (tests/test_claims.py) fails when a committed
number differs from its records, so no figure in the prose can drift from what was measured. A
claim whose direction reverses (`earlier` where a kind stopped later) raises instead of printing.

Record sets are named as in results/STATS.md: a workdir's `results.jsonl` by its directory
(`lenet`), a comparison's or study's `NAME.results.jsonl` as `dir/NAME`. Densities are given in
percent as the tables print them (21.1 for 21.1% remaining).
"""

from __future__ import annotations

import ast
import pathlib
import re
from typing import Callable

import numpy as np

from ltjax.reports import claim_tables
from ltjax.reports import selection as sel
from ltjax.reports import stats
from ltjax.reports.selection import ClaimError, Records, pct_label, round_at

INLINE = re.compile(r"<!--c:(.*?)-->(.*?)<!--/c-->", re.S)
BLOCK = re.compile(r"(<!--table:(.*?)-->\n)(.*?)(<!--/table-->)", re.S)


# ---------------------------------------------------------------- the claims
class Claims(claim_tables.Tables):
  """The functions a document's claims and tables may call, bound to one results directory."""

  def __init__(self, records: Records):
    self.records = records

  def _at(self, name, density):
    recs = self.records.get(name)
    return recs, (0 if density in (None, 100, 100.0) else round_at(recs, density))

  # -- single values
  def mean(self, name: str, kind: str, density: float | None = None, field: str = "acc") -> str:
    """Mean over trials (a trial's draws averaged first): accuracy in %, early stop in iterations."""
    recs, rnd = self._at(name, density)
    scale, digits = sel.scale_of(field)
    return sel.num(np.mean(list(sel.kind_trials(recs, kind, rnd, sel.field_name(field)).values())) * scale, digits)

  def minmax(self, name: str, kind: str, density: float | None = None, field: str = "acc") -> str:
    """Lowest and highest single record (one value where every record agrees)."""
    recs, rnd = self._at(name, density)
    scale, digits = sel.scale_of(field)
    v = sel.values(recs, kind, rnd, sel.field_name(field))
    return _span(sel.num(min(v) * scale, digits), sel.num(max(v) * scale, digits))

  def _diff(self, name, a, b, density, field) -> stats.Interval:
    recs, rnd = self._at(name, density)
    return sel.paired(recs, a, b, rnd, field)

  def diff(self, name: str, a: str, b: str, density: float, field: str = "acc") -> str:
    """a − b, mean and 95% interval over trials, paired by trial."""
    return self._interval(self._diff(name, a, b, density, field), field, f"{a} - {b} at {density}%")

  def delta(self, name: str, a: str, b: str, density: float, field: str = "acc") -> str:
    """a − b, the mean over trials only."""
    scale, digits = sel.scale_of(field)
    return sel.signed(self._diff(name, a, b, density, field).mean * scale, digits)

  def versus(self, name_a: str, kind_a: str, density_a: float | None, name_b: str, kind_b: str,
             density_b: float | None, field: str = "acc", own_dense: bool = False) -> str:
    """Two record sets compared trial by trial (runs of one seed share each trial's theta_0 and
    data order): mean and 95% interval of a − b; with `own_dense`, of each side's gain over its
    own set's dense network (sets from different machines, whose dense networks differ)."""
    (ra, na), (rb, nb) = self._at(name_a, density_a), self._at(name_b, density_b)
    f = sel.field_name(field)
    per_trial = sel.kind_trials_over_dense if own_dense else sel.kind_trials
    iv = stats.paired(per_trial(ra, kind_a, na, f), per_trial(rb, kind_b, nb, f))
    return self._interval(iv, field, f"{name_a} against {name_b}")

  def gap_versus(self, name_a: str, density_a: float, name_b: str, density_b: float, a: str = "ticket",
                 b: str = "reinit", field: str = "acc", draw_b: int | None = None) -> str:
    """Whether a gap changes between two record sets of one seed: (a − b in `name_a`) − (a − b in
    `name_b`), trial by trial, mean and 95% interval. Two gaps' own intervals overlapping does not
    show they are equal, nor does their not overlapping measure how far apart they are. `draw_b`
    keeps one of `name_b`'s control draws (else they are averaged per trial): to compare one draw
    against one, and to see whether a verdict rests on which draw it was."""
    (ra, na), (rb, nb) = self._at(name_a, density_a), self._at(name_b, density_b)
    rb = _one_draw(rb, draw_b, name_b)
    iv = _gap_change(ra, na, rb, nb, a, b, sel.field_name(field))
    return self._interval(iv, field, f"the {a} - {b} gap of {name_a} against {name_b}")

  def where_gap(self, name_a: str, name_b: str, sign: str, a: str = "ticket", b: str = "reinit",
                field: str = "acc", draw_b: int | None = None) -> str:
    """The densities (the rounds two sets of one design share) at which `gap_versus`'s interval
    lies wholly below ('<') or above ('>') 0."""
    if sign not in ("<", ">"):
      raise ClaimError(f"sign must be '<' or '>', got {sign!r}")
    ra, rb = self.records.get(name_a), _one_draw(self.records.get(name_b), draw_b, name_b)
    out = []
    for rnd in sorted({r["round"] for r in ra if r["round"] > 0} & {r["round"] for r in rb}):
      density = sel.mean_density(ra, rnd)
      if abs(sel.mean_density(rb, rnd) / density - 1) > 0.01:
        raise ClaimError(f"{name_a} and {name_b} differ in density at round {rnd}: not one design")
      iv = _gap_change(ra, rnd, rb, rnd, a, b, sel.field_name(field))
      if iv.real and (iv.hi < 0 if sign == "<" else iv.lo > 0):
        out.append(f"{pct_label(density)}%")
    return ", ".join(out) if out else "none"

  def _change(self, name, kind, density) -> float:
    return _change_at(*self._at(name, density), kind)

  def earlier(self, name: str, kind: str, density: float) -> str:
    """How much earlier than the dense network `kind` stops, in % of dense's mean iteration."""
    c = self._change(name, kind, density)
    if c > 0:
      raise ClaimError(f"{name}: {kind} at {density}% stops {c:.0%} later than dense, not earlier")
    return f"{-c * 100:.0f}%"

  def later(self, name: str, kind: str, density: float) -> str:
    c = self._change(name, kind, density)
    if c < 0:
      raise ClaimError(f"{name}: {kind} at {density}% stops {-c:.0%} earlier than dense, not later")
    return f"{c * 100:.0f}%"

  def _changes(self, name, kind, hi, lo):
    recs = self.records.get(name)
    return [_change_at(recs, n, kind) for n in sel.pruned_rounds(recs, lo, hi)]

  def earlier_range(self, name: str, kind: str, hi: float, lo: float) -> str:
    """Range of `earlier` over the rounds from `hi`% down to `lo`% remaining; all must be earlier."""
    c = self._changes(name, kind, hi, lo)
    if max(c) > 0:
      raise ClaimError(f"{name}: {kind} does not stop earlier than dense everywhere from {hi}% to {lo}%")
    return f"{-max(c) * 100:.0f}\u2013{-min(c) * 100:.0f}%"

  def later_range(self, name: str, kind: str, hi: float, lo: float) -> str:
    c = self._changes(name, kind, hi, lo)
    if min(c) < 0:
      raise ClaimError(f"{name}: {kind} does not stop later than dense everywhere from {hi}% to {lo}%")
    return f"{min(c) * 100:.0f}\u2013{max(c) * 100:.0f}%"

  def where(self, name: str, a: str, b: str, sign: str, field: str = "acc") -> str:
    """The densities at which the interval of a − b lies wholly below ('<') or above ('>') 0."""
    return self.where_versus(name, a, name, b, sign, field)

  def where_versus(self, name_a: str, kind_a: str, name_b: str, kind_b: str, sign: str, field: str = "acc") -> str:
    """`where` across two record sets of one design (the same rounds, densities and seeds: liu's
    reinit against liu_e's Scratch-E), paired by trial."""
    if sign not in ("<", ">"):
      raise ClaimError(f"sign must be '<' or '>', got {sign!r}")
    ra, rb, f = self.records.get(name_a), self.records.get(name_b), sel.field_name(field)
    out = []
    for rnd in sorted({r["round"] for r in ra if r["round"] > 0} & {r["round"] for r in rb}):
      density = sel.mean_density(ra, rnd)
      if abs(sel.mean_density(rb, rnd) / density - 1) > 0.01:
        raise ClaimError(f"{name_a} and {name_b} differ in density at round {rnd}: not one design")
      iv = stats.paired(sel.kind_trials(ra, kind_a, rnd, f), sel.kind_trials(rb, kind_b, rnd, f))
      if iv.real and (iv.hi < 0 if sign == "<" else iv.lo > 0):
        out.append(f"{pct_label(density)}%")
    return ", ".join(out) if out else "none"

  def same_records(self, name_a: str, name_b: str, kind: str, field: str = "acc") -> str:
    """'k of n': how many of `name_a`'s `kind` records (by round, trial and draw) `name_b` holds
    with the same `field`, bit for bit: the same seed and settings give the same networks."""
    f = sel.field_name(field)
    key = lambda r: (r["round"], r["trial"], r.get("draw", 0))  # noqa: E731
    theirs = {key(r): r[f] for r in self.records.get(name_b) if r["kind"] == kind and f in r}
    mine = [r for r in self.records.get(name_a) if r["kind"] == kind and f in r]
    if not mine:
      raise ClaimError(f"{name_a}: no {kind} records with {f}")
    return f"{sum(key(r) in theirs and theirs[key(r)] == r[f] for r in mine)} of {len(mine)}"

  def all_beat(self, name: str, a: str, b: str) -> str:
    """The highest density from which down every record of `a` is more accurate than every one of
    `b` at each round ('none' if not even at the sparsest)."""
    recs = self.records.get(name)
    rounds = sorted({r["round"] for r in recs if r["round"] > 0})
    best = None
    for rnd in reversed(rounds):
      if min(sel.values(recs, a, rnd, "test_accuracy")) <= max(sel.values(recs, b, rnd, "test_accuracy")):
        break
      best = rnd
    return "none" if best is None else f"{pct_label(sel.mean_density(recs, best))}%"

  def finding(self, name: str, density: float, how: str = "mean") -> str:
    """Model-steps of training spent finding the tickets' masks at `density` ('mean', 'min' or 'max'
    over trials)."""
    recs, rnd = self._at(name, density)
    steps = [r["finding_steps"] for r in recs if r["round"] == rnd and r["kind"] == "ticket"]
    if how not in ("mean", "min", "max") or not steps:
      raise ClaimError(f"finding: need how in mean/min/max and ticket records, got {how!r}")
    return sel.num({"mean": np.mean, "min": min, "max": max}[how](steps), 0)

  def _instability(self, name, density) -> dict:
    recs, rnd = self._at(name, density)
    row = next((r for r in stats.instability(recs) if r["round"] == rnd), None)
    if row is None:
      raise ClaimError(f"{name}: no linear-mode-connectivity paths in round {rnd}")
    return row

  def instability(self, name: str, kind: str = "ticket", density: float | None = None) -> str:
    """`kind`'s instability (the test error barrier on the path to its twin, in points; a
    trial's twins averaged): mean and 95% interval over trials, as in STATS.md."""
    row = self._instability(name, density)
    if kind not in row:
      raise ClaimError(f"{name}: no {kind} paths at {density}%")
    return self._interval(row[kind], "acc", f"{kind}'s instability at {density}%")

  def instability_gap(self, name: str, control: str, density: float) -> str:
    """The ticket's instability minus `control`'s (reinit, random_mask), paired by trial."""
    row = self._instability(name, density)
    if f"ticket-{control}" not in row:
      raise ClaimError(f"{name}: no ticket and {control} paths at {density}%")
    return self._interval(row[f"ticket-{control}"], "acc", f"ticket - {control} instability at {density}%")

  def instability_highest(self, name: str) -> str:
    """The highest upper end of any kind's 95% instability interval, in any round (points)."""
    rows = stats.instability(self.records.get(name))
    his = [iv.hi for row in rows for k, iv in row.items() if k in stats.TWINS.values() and iv.n >= 2]
    if not his:
      raise ClaimError(f"{name}: no instability with an interval")
    return sel.num(max(his) * 100, 2)

  def tail(self, name: str, kind: str) -> str:
    """The worst round's share of `kind`'s early stops in the last 5% of its training."""
    fractions = [f for (_, k), f in stats.truncation(self.records.get(name)).items() if k == kind]
    if not fractions:
      raise ClaimError(f"{name}: no early stops of {kind}")
    return f"{max(fractions) * 100:.0f}%"

  def fails_rule(self, name: str, kind: str) -> str:
    """The densities at which more than 10% of `kind`'s early stops fall in the last 5% of its
    training: there its accuracies are lower bounds and its early-stop iterations say nothing."""
    recs = self.records.get(name)
    failing = [rnd for (rnd, k), f in sorted(stats.truncation(recs).items()) if k == kind and f > stats.MAX_IN_TAIL]
    return ", ".join(f"{pct_label(sel.mean_density(recs, rnd))}%" for rnd in failing) or "none"

  def latest_stop(self, name: str, kind: str, rounds: str = "pruned") -> str:
    recs = [r for r in self.records.get(name) if r["kind"] == kind and (rounds != "pruned" or r["round"] > 0)]
    if not recs:
      raise ClaimError(f"{name}: no {kind} records")
    return sel.num(max(r["early_stop_step"] for r in recs), 0)

  def stops_after(self, name: str, kind: str, step: int) -> str:
    """'N of M': `kind`'s early stops later than `step`, of all its records."""
    recs = [r for r in self.records.get(name) if r["kind"] == kind and r["round"] > 0]
    return f"{sum(r['early_stop_step'] > step for r in recs)} of {len(recs)}"

  def count(self, name: str, kind: str) -> str:
    return str(sum(r["kind"] == kind for r in self.records.get(name)))

  def trials(self, name: str) -> str:
    return str(len({r["trial"] for r in self.records.get(name)}))

  def wall(self, name: str, unit: str = "s") -> str:
    """The rounds' wall time: each round's `wall_seconds` once, summed."""
    per_round = {}
    for r in self.records.get(name):
      per_round.setdefault(r["round"], r.get("wall_seconds") or 0.0)
    total = sum(per_round.values())
    if unit == "min":
      return f"{total / 60:.0f} min"
    if unit == "h":
      return f"{total / 3600:.2f} h"
    return f"{total:,.0f} s"

  def layer_kept(self, name: str, kind: str, layer: str, density: float) -> str:
    """The share of `layer` that `kind`'s masks keep at a round, in %: one value, or the range
    over records (which layers a criterion empties is how it collapses a network)."""
    recs, rnd = self._at(name, density)
    v = [r["layer_density"][layer] * 100 for r in recs if r["round"] == rnd and r["kind"] == kind
         and layer in (r.get("layer_density") or {})]
    if not v:
      raise ClaimError(f"{name}: no {kind} records with layer {layer!r} at {density}%")
    return _span(sel.num(min(v), 1), sel.num(max(v), 1)) + "%"

  def density(self, name: str, rnd: int) -> str:
    return f"{pct_label(sel.mean_density(self.records.get(name), rnd))}%"

  def xor(self, group: str, units: int, measure: str, source: str = "ours") -> str:
    """A cell of the XOR record (results/xor/xor.json): group 'scratch' or a pruning strategy."""
    data = self.records.json("xor/xor.json")
    if source == "paper":
      data = data["paper"]
    table = data["scratch"] if group == "scratch" else data["pruned"].get(group)
    try:
      return f"{table[str(units)][measure]:.1f}"
    except (KeyError, TypeError):
      raise ClaimError(f"xor: no {source} cell {group!r}, {units} units, {measure!r}") from None


def _change_at(recs, rnd: int, kind: str) -> float:
  """`kind`'s mean early-stop iteration in round `rnd` relative to the dense network's, minus 1."""
  f = sel.field_name("stop")
  dense = np.mean(list(sel.kind_trials(recs, "dense", 0, f).values()))
  return float(np.mean(list(sel.kind_trials(recs, kind, rnd, f).values())) / dense - 1)


def _gap_change(ra, na: int, rb, nb: int, a: str, b: str, field: str) -> stats.Interval:
  """(a − b in round `na` of `ra`) − (a − b in round `nb` of `rb`), paired by trial."""
  def gap(recs, rnd):
    other = sel.kind_trials(recs, b, rnd, field)
    return {t: v - other[t] for t, v in sel.kind_trials(recs, a, rnd, field).items() if t in other}
  return stats.paired(gap(ra, na), gap(rb, nb))


def _one_draw(recs, draw: int | None, name: str):
  """`recs` with every kind that has a record of control draw `draw` cut to that draw (tickets and
  dense networks, which have draw 0 only, stay as they are for draw > 0)."""
  if draw is None:
    return recs
  drawn = {r["kind"] for r in recs if r.get("draw", 0) == draw}
  if not drawn:
    raise ClaimError(f"{name} has no records of draw {draw}")
  return [r for r in recs if r.get("draw", 0) == draw or r["kind"] not in drawn]


def _span(lo: str, hi: str) -> str:
  """'lo–hi' of two printed values, or the one value where they print alike."""
  return lo if lo == hi else f"{lo}\u2013{hi}"


def _call(claims: Claims, expr: str) -> str:
  """Evaluate `name(literal, ...)` against `claims`; nothing but a call of a public method with
  literal arguments is accepted."""
  try:
    node = ast.parse(expr.strip(), mode="eval").body
  except SyntaxError as e:
    raise ClaimError(f"cannot parse claim {expr!r}: {e.msg}") from None
  if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
    raise ClaimError(f"a claim is a call like mean('lenet', 'ticket', 21.1), got {expr!r}")
  fn: Callable | None = getattr(claims, node.func.id, None) if not node.func.id.startswith("_") else None
  if fn is None or not callable(fn):
    raise ClaimError(f"unknown claim {node.func.id!r}")
  try:
    args = [ast.literal_eval(a) for a in node.args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
  except ValueError:
    raise ClaimError(f"claim arguments must be literals: {expr!r}") from None
  try:
    return str(fn(*args, **kwargs))
  except ClaimError:
    raise
  except (TypeError, ValueError) as e:  # arguments of the wrong type or shape, as a table row too short
    raise ClaimError(f"{expr}: {e}") from None


def render(text: str, root: pathlib.Path | str) -> str:
  """`text` with every marked value and table recomputed from the records under `root`."""
  claims = Claims(Records(root))
  text = BLOCK.sub(lambda m: m.group(1) + _call(claims, m.group(2)) + "\n" + m.group(4), text)
  return INLINE.sub(lambda m: f"<!--c:{m.group(1)}-->{_call(claims, m.group(1))}<!--/c-->", text)


def unmarked_numbers(text: str) -> list[str]:
  """Two-decimal numbers (how accuracies and their differences print) outside marked values,
  tables and code: each is a result typed by hand. Returns the lines that hold one."""
  text = BLOCK.sub("", INLINE.sub("", text))
  text = re.sub(r"```.*?```", "", text, flags=re.S)
  text = re.sub(r"`[^`\n]*`", "", text)
  return [line for line in text.splitlines() if re.search(r"(?<![\w.])[+\u2212-]?\d+\.\d\d(?![\d.])", line)]

