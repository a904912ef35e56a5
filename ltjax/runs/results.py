"""Per-ticket, per-round records: building them, writing them crash-safely, and summarizing them.

results.jsonl is rewritten atomically (`files.write_atomic`) at the end of each round, keeping only
rounds before the one being written, so a crash at any moment leaves either the old or the new
file, and a round re-run after a crash never duplicates records.
"""

from __future__ import annotations

import csv
import io
import json
import math
import pathlib
from typing import Any, Iterable, Sequence

import numpy as np

from ltjax import files
from ltjax.core import interpolation
from ltjax.core.masks import pack_masks, unpack_masks  # noqa: F401  (masks/round_XX.npz; part of this API)

RESULTS, RESULTS_CSV = "results.jsonl", "results.csv"
CSV_FIELDS = ("round", "trial", "kind", "draw", "seed", "density", "early_stop_step", "val_loss",
              "val_accuracy", "test_accuracy", "final_test_accuracy", "diverged", "steps_trained",
              "finding_steps", "instability", "wall_seconds")
# What every record holds and every reader relies on: a line without them is not an ltjax record.
REQUIRED = {"round": int, "trial": int, "kind": str, "draw": int, "density": (int, float),
            "early_stop_step": int, "steps_trained": int}


class RecordsError(ValueError):
  """A records file that holds something other than ltjax records (one line for the user)."""


def records(result, seed: int) -> list[dict[str, Any]]:
  """One JSON-ready dict per ticket of a `lottery.RoundResult`."""
  out = []
  for i, tid in enumerate(result.ids):
    stopped = int(result.early_stop_step[i]) >= 0  # else no finite validation loss was ever seen
    at_stop = lambda x: _num(x) if stopped else None  # noqa: E731
    out.append({
        "round": result.round, "trial": tid.trial, "kind": tid.kind, "draw": tid.draw, "seed": seed,
        "density": float(result.density[i]),
        "layer_density": {k: float(v[i]) for k, v in result.layer_density.items()},
        "early_stop_step": int(result.early_stop_step[i]),
        "val_loss": at_stop(result.val_loss[i]), "val_accuracy": at_stop(result.val_accuracy[i]),
        "test_accuracy": at_stop(result.test_accuracy[i]),
        "final_test_accuracy": _num(result.final_test_accuracy[i]),
        "diverged": bool(result.diverged[i]), "steps_trained": int(result.steps_trained[i]),
        "finding_steps": int(result.finding_steps[i]),
        "wall_seconds": round(float(result.seconds), 3),  # the round's, shared by its tickets
    })
    path = result.path_error[i]
    if not np.isnan(path).all():  # a ticket with a twin: linear mode connectivity
      out[-1]["path_error"] = [round(float(e), 6) for e in path]
      out[-1]["instability"] = round(float(interpolation.barrier(path)), 6)
  return out


def _num(x) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None  # JSON has no NaN; a diverged ticket reads null



def read(workdir: pathlib.Path | str) -> list[dict[str, Any]]:
  """All complete records of a workdir (see `read_file`)."""
  return read_file(pathlib.Path(workdir) / RESULTS)


def read_file(path: pathlib.Path | str) -> list[dict[str, Any]]:
  """All complete records of a records file (a torn last line, impossible with atomic writes, is
  skipped anyway); [] if there is none; RecordsError if it holds something else."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  try:
    lines = path.read_text().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise RecordsError(f"{path}: cannot read it as records ({getattr(e, 'strerror', None) or e})") from None
  out = []
  for n, line in enumerate(lines, 1):
    try:
      rec = json.loads(line)
    except json.JSONDecodeError:
      continue
    bad = _invalid_fields(rec)
    if bad:
      raise RecordsError(f"{path}: line {n} is not an ltjax record (no valid {', '.join(bad)})")
    out.append(rec)
  return out


def _invalid_fields(rec: Any) -> list[str]:
  """The REQUIRED fields `rec` lacks or holds with another type (a bool is not an int here)."""
  if not isinstance(rec, dict):
    return list(REQUIRED)
  return [k for k, t in REQUIRED.items() if isinstance(rec.get(k), bool) or not isinstance(rec.get(k), t)]


def write_round(workdir: pathlib.Path | str, round_records: Sequence[dict[str, Any]]) -> None:
  """Replace this round's (and any later round's) records with `round_records`; refresh the CSV."""
  workdir = pathlib.Path(workdir)
  r = round_records[0]["round"]
  kept = [rec for rec in read(workdir) if rec["round"] < r] + list(round_records)
  files.write_atomic(workdir / RESULTS,
                     "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in kept))
  files.write_atomic(workdir / RESULTS_CSV, to_csv(kept))


def to_csv(recs: Iterable[dict[str, Any]]) -> str:
  recs = list(recs)
  layers = sorted({k for rec in recs for k in rec.get("layer_density", {})})
  buf = io.StringIO()
  writer = csv.writer(buf)
  writer.writerow(list(CSV_FIELDS) + [f"density:{k}" for k in layers])
  for rec in recs:
    writer.writerow([rec.get(f) for f in CSV_FIELDS] +
                    [rec.get("layer_density", {}).get(k) for k in layers])
  return buf.getvalue()


def summarize(recs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
  """Per (round, kind): density and mean/min/max of early-stop step and test accuracy."""
  groups: dict[tuple[int, str], list[dict]] = {}
  for rec in recs:
    groups.setdefault((rec["round"], rec["kind"]), []).append(rec)
  rows = []
  for (r, kind), g in sorted(groups.items()):
    ok = [x for x in g if x["test_accuracy"] is not None]  # a late divergence keeps its early stop
    row = {"round": r, "kind": kind, "n": len(g), "diverged": sum(x["diverged"] for x in g),
           "density": float(np.mean([x["density"] for x in g]))}
    for field in ("early_stop_step", "test_accuracy", "final_test_accuracy"):
      vals = np.array([x[field] for x in ok], dtype=float)
      row[field] = ({"mean": float(vals.mean()), "min": float(vals.min()), "max": float(vals.max())}
                    if len(vals) else None)
    rows.append(row)
  return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
  """A fixed-width text table of `summarize` rows (accuracies in %)."""
  head = f"{'round':>5} {'kind':<12} {'remain%':>8} {'n':>3} {'early-stop it (min-max)':>24} " \
         f"{'test acc% @ES (min-max)':>24} {'final acc%':>10}"
  lines = [head, "-" * len(head)]
  for row in rows:
    es, acc, fin = row["early_stop_step"], row["test_accuracy"], row["final_test_accuracy"]
    es_s = f"{es['mean']:.0f} ({es['min']:.0f}-{es['max']:.0f})" if es else "diverged"
    acc_s = f"{100 * acc['mean']:.2f} ({100 * acc['min']:.2f}-{100 * acc['max']:.2f})" if acc else "-"
    fin_s = f"{100 * fin['mean']:.2f}" if fin else "-"
    div = f" [{row['diverged']} diverged]" if row["diverged"] else ""
    lines.append(f"{row['round']:>5} {row['kind']:<12} {100 * row['density']:>8.2f} {row['n']:>3} "
                 f"{es_s:>24} {acc_s:>24} {fin_s:>10}{div}")
  return "\n".join(lines)
