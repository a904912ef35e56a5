"""A sweep's manifest: ROOT/sweep.json names the study, base config, fixed fields and points of a
sweep whose points run one workdir each (ROOT/<point name>).

`experiments.sweep` writes it before running any point (`claim`), so rerunning the same command
resumes the same sweep and a different one in the same root is refused; `experiments.report
--sweep` reads it back (`finished`) to overlay the points that have results. The format lives only
here, so the two binaries cannot drift apart.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Mapping, Sequence

from ltjax import files
from ltjax.runs import results

MANIFEST = "sweep.json"


class SweepError(ValueError):
  """A manifest that is missing, unreadable or another sweep's: one line for the user."""


def manifest(study: str | None, config: str, fixed: Mapping[str, Any],
             points: Sequence[tuple[str, Any, Mapping[str, Any]]]) -> dict[str, Any]:
  """The manifest of a sweep; `points` are (name, config, values) as `studies.expand` gives them.

  Values are stored as JSON reads them back (tuples become lists), so a manifest compares equal
  to the one read from disk.
  """
  return {"study": study or None, "config": config, "set": _jsonable(fixed),
          "points": [{"name": name, "values": _jsonable(values)} for name, _, values in points]}


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
  return json.loads(json.dumps(dict(values), default=list))


def read(root: pathlib.Path | str) -> dict[str, Any]:
  """ROOT/sweep.json; SweepError if it is missing, unreadable or has no list of named points."""
  path = pathlib.Path(root) / MANIFEST
  try:
    found = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise SweepError(f"cannot read {path}: {e}") from None
  points = found.get("points") if isinstance(found, dict) else None
  if not isinstance(points, list) or not all(isinstance(p, dict) and _is_name(p.get("name"))
                                             for p in points):
    raise SweepError(f"{path} is not a sweep manifest (no list of named points)")
  return found


def _is_name(name: Any) -> bool:
  """A point's workdir name: one path component inside the root (studies.point_name's kind)."""
  return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name


def point_names(found: Mapping[str, Any]) -> list[str]:
  return [p["name"] for p in found["points"]]


def claim(root: pathlib.Path | str, wanted: Mapping[str, Any], restart: bool = False) -> None:
  """Write ROOT/sweep.json, or check that the one there is this same sweep (`restart`: replace it).

  SweepError if ROOT holds another sweep or an unreadable manifest; OSError if ROOT cannot be
  written. Written atomically: a crash leaves the old manifest or the new one.
  """
  root = pathlib.Path(root)
  path = root / MANIFEST
  if path.exists() and not restart:
    try:
      old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      raise SweepError(f"{path} is unreadable ({e})") from None
    if _without_rounds(old) != _without_rounds(wanted):
      changed = [k for k in wanted if not isinstance(old, dict) or old.get(k) != wanted[k]]
      raise SweepError(f"{root} holds another sweep (differs in {', '.join(changed) or 'its fields'})")
    if _rounds_of(old) != _rounds_of(wanted):
      _check_rounds(root, wanted)
  files.write_atomic(path, json.dumps(dict(wanted), indent=1) + "\n")


def _without_rounds(manifest: Any) -> Any:
  """The manifest without a `--set.prune.rounds`: a sweep given more IMP rounds is the same sweep
  continued (`runs.workdir` refuses fewer, and any mode whose rounds depend on their count)."""
  if not isinstance(manifest, dict) or not isinstance(manifest.get("set"), dict):
    return manifest
  return {**manifest, "set": {k: v for k, v in manifest["set"].items() if k != "prune.rounds"}}


def _rounds_of(manifest: Any) -> Any:
  return manifest.get("set", {}).get("prune.rounds") if isinstance(manifest, dict) else None


def _check_rounds(root: pathlib.Path, wanted: Mapping[str, Any]) -> None:
  """More rounds continue the points (their workdirs decide how); fewer than a started point ran,
  or none given after some were, would leave the points with different round counts."""
  rounds = _rounds_of(wanted)
  for name in point_names(wanted):
    try:
      ran = json.loads((root / name / "config.json").read_text())["config"]["prune"]["rounds"]
    except (OSError, ValueError, KeyError, TypeError):
      continue  # not started: it trains with the sweep's rounds
    if rounds != ran and not (type(rounds) is int and type(ran) is int and rounds > ran):
      raise SweepError(f"{root}: point {name} ran {ran} rounds; give --set.prune.rounds={ran} or more "
                       "to continue the sweep, or --restart")


def finished(root: pathlib.Path | str) -> list[tuple[str, pathlib.Path]]:
  """(name, workdir) of the sweep's points that have results, in the manifest's order."""
  root = pathlib.Path(root)
  workdirs = [(name, root / name) for name in point_names(read(root))]
  return [(name, w) for name, w in workdirs if (w / results.RESULTS).exists()]
