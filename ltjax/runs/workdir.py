"""The workdir of a run: its layout, its lock, and the config it was made for.

Layout of a workdir:
  config.json            the resolved config and the ltjax version (a different config is refused;
                         more IMP rounds continue the run)
  results.jsonl / .csv   one record per ticket per round (rewritten atomically each round)
  curves/round_XX.npz    validation/training curves [num_evals, K] and the ticket ids
  masks/round_XX.npz     each trial's ticket mask for the round (bit-packed)
  lineage.npz            what the next round starts from (masks, and theta_k where rewinding):
                         with the records, enough to continue the run without checkpoints
  tensorboard/<ticket>/  live TensorBoard curves: round_XX/{train_loss,val_loss,val_accuracy}
  checkpoints/           orbax: lineage after every round (init weights, masks), mid-round states

What writes each of them, and in which order, is `ltjax.runs.writers`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import pathlib
import shutil
from typing import Any

import ltjax
from ltjax import files, wiring
from ltjax.engine import runtime
from ltjax.runs import lineage_file, results
from ltjax.runs.validation import UsageError

CONFIG = "config.json"
_LOCK = ".lock"
RESULT_FILES = (CONFIG, results.RESULTS, results.RESULTS_CSV, lineage_file.FILE, lineage_file.PREVIOUS)
RESULT_DIRS = ("curves", "masks", "checkpoints", "tensorboard")
# Fields that change how a run executes, not what it computes: may differ on resume.
_EXECUTION_ONLY = ("execution", "data_dir")


def config_dict(cfg) -> dict[str, Any]:
  """The config as JSON data, as config.json holds it."""
  return json.loads(cfg.to_json_best_effort())


@contextlib.contextmanager
def locked(workdir: pathlib.Path):
  """Exclusive lock on the workdir; a second process is refused (the OS frees it if we die)."""
  f = open(workdir / _LOCK, "w")
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.close()
    raise UsageError(f"workdir {workdir} is in use by another process") from None
  try:
    yield
  finally:
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


def prepare_workdir(workdir: pathlib.Path, cfg, restart: bool) -> None:
  """Create the workdir, refuse one that holds a different config (unless restarting), save ours
  (with the method's defaults resolved: config.json says what 'auto' meant)."""
  mine = {"config": config_dict(wiring.with_method_defaults(cfg)), "ltjax_version": ltjax.__version__}
  path = workdir / CONFIG
  theirs = {}
  if path.exists() and not restart:
    try:
      theirs = json.loads(path.read_text())
    except json.JSONDecodeError:
      pass
    old = theirs.get("config", {}) if isinstance(theirs, dict) else {}
    diff = _config_diff(_with_rounds_of(old, mine["config"]), mine["config"])
    if diff:
      raise UsageError(f"workdir {workdir} holds a different config ({diff}); use another "
                       "--workdir or --restart to discard it")
  if restart:
    for name in RESULT_FILES:
      (workdir / name).unlink(missing_ok=True)
    lineage_file.remove_unused_starts(workdir)
    for name in RESULT_DIRS:
      shutil.rmtree(workdir / name, ignore_errors=True)
  for directory in (workdir, workdir / "curves", workdir / "masks"):  # writes a killed run left half-done
    files.remove_stale_temps(directory)
  # Every machine the run has trained on, in order: its records are bit-identical only on one kind.
  machines = [m for m in theirs.get("machines", []) if isinstance(m, str)] if isinstance(theirs, dict) else []
  if isinstance(theirs, dict) and "machines" not in theirs and _has_records(workdir):
    machines = [UNRECORDED_MACHINE]  # resumed from rounds trained before config.json said where
  here = runtime.describe_machine()
  mine["machines"] = machines if machines[-1:] == [here] else machines + [here]
  files.write_atomic(path, json.dumps(mine, indent=2, sort_keys=True) + "\n")


UNRECORDED_MACHINE = "not recorded (rounds trained before config.json named machines)"


def _has_records(workdir: pathlib.Path) -> bool:
  try:
    return (workdir / results.RESULTS).stat().st_size > 0
  except OSError:
    return False


def _with_rounds_of(old: dict, new: dict) -> dict:
  """`old` with `new`'s prune.rounds where that only adds IMP rounds (`lottery.prunes_past_last_round`):
  the run continues from its last round. Fewer rounds stay another experiment."""
  o, n = old.get("prune"), new.get("prune")
  if not (isinstance(o, dict) and isinstance(n, dict)):
    return old
  was, now = o.get("rounds"), n.get("rounds")
  if o.get("mode") == n.get("mode") == "iterative" and type(was) is int and type(now) is int and now > was:
    return {**old, "prune": {**o, "rounds": now}}
  return old


def _config_diff(old: dict, new: dict, prefix: str = "") -> str:
  """The first field (dotted path) whose value differs, as 'field: old -> new'; '' if none."""
  for key in sorted(set(old) | set(new)):
    if not prefix and key in _EXECUTION_ONLY or key not in old:
      continue  # how it runs; or a field added to ltjax after that workdir was made
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      d = _config_diff(a, b, f"{prefix}{key}.")
      if d:
        return d
    elif a != b:
      return f"{prefix}{key}: {a!r} -> {b!r}"
  return ""


def _writable_dir(workdir: pathlib.Path) -> pathlib.Path:
  """`workdir`, created if missing; UsageError (one line) if we cannot write in it."""
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("")
    probe.unlink()
  except OSError as e:
    raise UsageError(f"workdir {workdir} is not writable: {e.strerror or e}") from None
  return workdir
