"""A lottery experiment bound to a workdir: validated config, lock, resume, results on disk.

Layout of a workdir:
  config.json            the resolved config and the ltjax version (a different config is refused)
  results.jsonl / .csv   one record per ticket per round (rewritten atomically each round)
  curves/round_XX.npz    validation/training curves [num_evals, K] and the ticket ids
  masks/round_XX.npz     each trial's ticket mask for the round (bit-packed)
  checkpoints/           orbax: lineage after every round (init weights, masks), mid-round states

Crash safety: each round's files are written before its checkpoint; on restart the latest
checkpoint decides where to resume and rewriting a round's records replaces any earlier copy, so
a kill at any moment loses at most the work since the last checkpoint and duplicates nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import pathlib
import shutil
import time
from typing import Any, Callable

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

import ltjax
from ltjax import checkpoint, data, lottery, models, parallel, pruning, results, runtime, tickets, train

CONFIG = "config.json"
_LOCK = ".lock"
_RESULT_FILES = (CONFIG, results.RESULTS, results.RESULTS_CSV)
_RESULT_DIRS = ("curves", "masks", "checkpoints")
# Fields that change how a run executes, not what it computes: may differ on resume.
_EXECUTION_ONLY = ("execution", "data_dir")


class UsageError(ValueError):
  """Bad input: reported to the user as one line, never a traceback."""


# ---------------------------------------------------------------- validation
def validate(cfg) -> None:
  """Raise UsageError for any config a run cannot honour, before anything is trained or written."""
  t, p = cfg.train, cfg.prune
  checks = [
      (cfg.model in models.names(), f"unknown model {cfg.model!r}; models: {', '.join(models.names())}"),
      (t.steps >= 1, f"train.steps must be >= 1, got {t.steps}"),
      (t.eval_every >= 1, f"train.eval_every must be >= 1, got {t.eval_every}"),
      (t.eval_every <= t.steps, f"train.eval_every ({t.eval_every}) is larger than the run "
                                f"(train.steps={t.steps})"),
      (t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}"),
      (t.eval_batch_size >= 1, f"train.eval_batch_size must be >= 1, got {t.eval_batch_size}"),
      (t.lr > 0 and math.isfinite(t.lr), f"train.lr must be positive, got {t.lr}"),
      (t.warmup_steps >= 0, f"train.warmup_steps must be >= 0, got {t.warmup_steps}"),
      (p.mode in ("iterative", "oneshot"), f"prune.mode must be 'iterative' or 'oneshot', got {p.mode!r}"),
      (p.rounds >= 0, f"prune.rounds must be >= 0, got {p.rounds}"),
      (all(0 < d <= 1 for d in p.densities), f"prune.densities must be in (0, 1], got {tuple(p.densities)}"),
      (p.scope in (pruning.LAYERWISE, pruning.GLOBAL), f"prune.scope must be 'layerwise' or 'global', got {p.scope!r}"),
      (p.rewind_step >= 0, f"prune.rewind_step must be >= 0, got {p.rewind_step}"),
      (p.rewind_step < t.steps, f"prune.rewind_step ({p.rewind_step}) is beyond the training length "
                                f"(train.steps={t.steps})"),
      (p.rewind_step % t.eval_every == 0, f"prune.rewind_step ({p.rewind_step}) must be a multiple "
                                          f"of train.eval_every ({t.eval_every})"),
      (cfg.trials >= 1, f"trials must be >= 1, got {cfg.trials}"),
      (cfg.reinit_draws >= 1, f"reinit_draws must be >= 1, got {cfg.reinit_draws}"),
      (all(c in ("", tickets.REINIT, tickets.RANDOM_MASK) for c in cfg.controls),
       f"controls must be among ('reinit', 'random_mask'), got {tuple(cfg.controls)}"),
      (cfg.validation_size >= 1, f"validation_size must be >= 1, got {cfg.validation_size}"),
      (cfg.execution.ticket_batch >= -1, f"execution.ticket_batch must be >= -1, got {cfg.execution.ticket_batch}"),
      (cfg.execution.intervals_per_call >= 1, "execution.intervals_per_call must be >= 1"),
      (cfg.execution.unroll in (-1, 0, 1), f"execution.unroll must be -1, 0 or 1, got {cfg.execution.unroll}"),
      (cfg.execution.checkpoint_every >= 0, "execution.checkpoint_every must be >= 0"),
      (t.matmul_precision in runtime.PRECISIONS,
       f"train.matmul_precision must be one of {runtime.PRECISIONS}, got {t.matmul_precision!r}"),
      (cfg.execution.cpu_devices == -1 or cfg.execution.cpu_devices >= 1,
       f"execution.cpu_devices must be -1 (auto) or >= 1, got {cfg.execution.cpu_devices}"),
  ]
  for ok, message in checks:
    if not ok:
      raise UsageError(message)
  try:
    parallel.parse_mesh(str(cfg.execution.mesh))
  except parallel.LayoutError as e:
    raise UsageError(f"execution.mesh: {e}") from None
  if p.mode == "oneshot" and not p.densities:
    raise UsageError("prune.mode='oneshot' needs prune.densities")
  try:
    for name, rate in (("conv_rate", p.conv_rate), ("fc_rate", p.fc_rate), ("output_rate", p.output_rate)):
      pruning.validate_rate(rate, f"prune.{name}")
    pruning.get_score(p.score)
  except pruning.PruningError as e:
    raise UsageError(str(e)) from None


def config_dict(cfg) -> dict[str, Any]:
  return json.loads(cfg.to_json_best_effort())


# ---------------------------------------------------------------- workdir
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
  """Create the workdir, refuse one that holds a different config (unless restarting), save ours."""
  mine = {"config": config_dict(cfg), "ltjax_version": ltjax.__version__}
  path = workdir / CONFIG
  if path.exists() and not restart:
    try:
      theirs = json.loads(path.read_text())
    except json.JSONDecodeError:
      theirs = {}
    diff = _config_diff(theirs.get("config", {}), mine["config"])
    if diff:
      raise UsageError(f"workdir {workdir} holds a different config ({diff}); use another --workdir "
                       "or --restart to discard it")
  if restart:
    for name in _RESULT_FILES:
      (workdir / name).unlink(missing_ok=True)
    for name in _RESULT_DIRS:
      shutil.rmtree(workdir / name, ignore_errors=True)
  results.atomic_write(path, json.dumps(mine, indent=2, sort_keys=True) + "\n")


def _config_diff(old: dict, new: dict, prefix: str = "") -> str:
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
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("")
    probe.unlink()
  except OSError as e:
    raise UsageError(f"workdir {workdir} is not writable: {e.strerror or e}") from None
  return workdir


def load_dataset(cfg) -> data.Dataset:
  if cfg.dataset == "synthetic":
    return data.synthetic(validation_size=min(cfg.validation_size, 1000))
  try:
    return data.load(cfg.dataset, data_dir=cfg.data_dir or None, validation_size=cfg.validation_size,
                     normalization=cfg.normalization)
  except (data.DatasetNotFoundError, ValueError) as e:
    raise UsageError(str(e).splitlines()[0]) from None


# ---------------------------------------------------------------- the sink that persists rounds
class WorkdirSink:
  """Logs progress, writes each round's files, checkpoints the lineage (and mid-round states)."""

  def __init__(self, workdir: pathlib.Path, setup: lottery.Setup, ckpt: checkpoint.Checkpoints,
               log: Callable[[str], None], log_every_s: float = 5.0, writer: bool = True):
    self.workdir, self.setup, self.ckpt, self.log = workdir, setup, ckpt, log
    self.writer = writer  # only one process writes results; all take part in checkpoints
    self.log_every_s = log_every_s
    self._last_log = 0.0
    self._round_t0: dict[int, tuple[float, int]] = {}
    self._last_ckpt_step = 0

  def progress(self, round_index, step, snapshot, curves):
    cfg = self.setup.cfg
    now = time.perf_counter()
    t0, s0 = self._round_t0.setdefault(round_index, (now, step))  # rates exclude the compile
    every = cfg.execution.checkpoint_every
    # Round 0 of a rewinding run holds theta_k outside the states: it restarts rather than resumes.
    resumable = not (lottery.rewinding(cfg) and round_index == 0)
    if every and resumable and step < cfg.train.steps and step - self._last_ckpt_step >= every:
      self._save_midround(round_index, step, *snapshot(), curves)
    if now - self._last_log >= self.log_every_s or step == cfg.train.steps:
      self._last_log = now
      val = np.asarray(curves.val_loss)
      k = val.shape[1]
      speed = ""
      if step > s0:  # the first call includes compilation: no rate until a second one
        rate = (step - s0) / (now - t0)
        speed = f", {rate:.0f} steps/s ({rate * k:.0f} model-steps/s)"
      finite = val[np.isfinite(val)]
      best_s = f"{finite.min():.4f}" if finite.size else "n/a"
      self.log(f"round {round_index} step {step}/{cfg.train.steps}, {k} tickets, "
               f"best val loss {best_s}{speed}")

  def _save_midround(self, round_index, step, states, tracker, curves):
    tree = {"states": flax.serialization.to_state_dict(states),
            "tracker": flax.serialization.to_state_dict(tracker)}
    meta = {"round": round_index, "step": int(step),
            "curves": {k: np.asarray(v).tolist() for k, v in
                       flax.serialization.to_state_dict(curves).items()}}
    self.ckpt.save_midround(int(step), tree, meta)
    self._last_ckpt_step = step

  def round_done(self, result: lottery.RoundResult, lineage: lottery.Lineage):
    cfg, r = self.setup.cfg, result.round
    if self.writer:
      results.write_round(self.workdir, results.records(result, cfg.seed))
      ids = np.array([(t.trial, tickets.KINDS.index(t.kind), t.draw) for t in result.ids])
      _atomic_savez(self.workdir / "curves" / f"round_{r:02d}.npz", ids=ids,
                    kinds=np.array(tickets.KINDS), **flax.serialization.to_state_dict(result.curves))
      rows = [i for i, t in enumerate(result.ids) if t.kind == tickets.TICKET]
      _atomic_savez(self.workdir / "masks" / f"round_{r:02d}.npz",
                    **results.pack_masks(result.masks, rows))
    trained = {"params": flax.serialization.to_state_dict(result.final_params),
               "mask": flax.serialization.to_state_dict(result.masks)}
    self.ckpt.save_round(lineage.round, lineage_tree(lineage), {"round": lineage.round}, trained)
    self._last_ckpt_step = 0
    if not self.writer:
      return
    recs = [x for x in results.read(self.workdir) if x["round"] == r]
    self.log(f"round {r} done in {result.seconds:.1f}s\n" +
             results.format_table(results.summarize(recs)))


def _atomic_savez(path: pathlib.Path, **arrays) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp")
  with open(tmp, "wb") as f:
    np.savez(f, **arrays)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def lineage_tree(lineage: lottery.Lineage) -> dict:
  return flax.serialization.to_state_dict(lineage)


# ---------------------------------------------------------------- the entry point
def train_and_evaluate(cfg, workdir: str | os.PathLike, restart: bool = False,
                       log: Callable[[str], None] = print) -> list[dict[str, Any]]:
  """Run (or resume) the experiment `cfg` in `workdir`; returns all result records.

  In a multi-process run (`runtime.join_cluster` first) every process computes its share of the
  tickets and takes part in checkpoints; only process 0 writes results and logs.
  """
  validate(cfg)
  dataset, setup = _build(cfg)
  writer = jax.process_index() == 0
  log = log if writer else (lambda _: None)
  workdir = pathlib.Path(workdir)
  with (locked(_writable_dir(workdir)) if writer else contextlib.nullcontext()):
    if writer:
      prepare_workdir(workdir, cfg, restart)
    runtime.barrier("workdir_ready")  # others read checkpoints only after a restart cleared them
    ckpt = checkpoint.Checkpoints(workdir)
    try:
      lineage, resume = _restore(setup, ckpt, log)
      sink = WorkdirSink(workdir, setup, ckpt, log, writer=writer)
      log(f"{cfg.name}: {cfg.model} on {dataset.name}, {lottery.num_rounds(cfg)} rounds "
          f"from round {lineage.round}, {setup.trainer.layout.describe()}, {jax.process_count()} "
          f"process(es), ticket_batch {setup.trainer.ticket_batch}, unroll {setup.trainer.unroll}")
      lottery.run_rounds(setup, dataset, sink, lineage, resume)
    finally:
      ckpt.close()
  runtime.barrier("results_written")
  return results.read(workdir)


def _build(cfg) -> tuple[data.Dataset, lottery.Setup]:
  """Devices, data and the compiled pieces' setup: every check that needs them, before writing."""
  ex = cfg.execution
  try:
    runtime.start(ex.cpu_devices, ex.compilation_cache, ex.compilation_cache_dir,
                  cfg.train.matmul_precision)
  except parallel.LayoutError as e:
    raise UsageError(str(e)) from None
  except OSError as e:
    raise UsageError(f"execution.compilation_cache_dir: cannot use it: {e.strerror or e}") from None
  dataset = load_dataset(cfg)
  try:
    setup = lottery.build(cfg, dataset)
  except parallel.LayoutError as e:
    raise UsageError(f"execution.mesh: {e}") from None
  return setup.trainer.layout.replicate(dataset), setup


def _restore(setup: lottery.Setup, ckpt: checkpoint.Checkpoints, log):
  """The lineage to continue from and, if a round was interrupted, its saved training state."""
  fresh = lottery.initial_lineage(setup)
  saved = ckpt.latest_round(lineage_tree(fresh))
  lineage = fresh
  if saved is not None:
    next_round, tree, meta = saved
    lineage = flax.serialization.from_state_dict(fresh, jax.tree.map(jnp.asarray, tree))
    lineage = lineage.replace(round=int(meta["round"]))
    log(f"resuming after round {lineage.round - 1}")
  if lineage.round >= lottery.num_rounds(setup.cfg):
    return lineage, None
  ids = lottery.lineup(setup.cfg, lineage.round)
  states = lottery.start_states(setup, lineage, ids)
  target = {"states": flax.serialization.to_state_dict(states),
            "tracker": flax.serialization.to_state_dict(setup.trainer.new_tracker(states))}
  mid = ckpt.latest_midround(target)
  if mid is None:
    return lineage, None
  step, tree, meta = mid
  if meta["round"] != lineage.round:
    return lineage, None  # stale: belongs to a round whose checkpoint already exists
  tree = jax.tree.map(jnp.asarray, tree)
  states = flax.serialization.from_state_dict(states, tree["states"])
  tracker = flax.serialization.from_state_dict(setup.trainer.new_tracker(states), tree["tracker"])
  curves = train.Curves(**{k: jnp.asarray(v) for k, v in meta["curves"].items()})
  log(f"resuming round {lineage.round} at step {step}")
  return lineage, (step, states, tracker, curves)
