"""A lottery experiment bound to a workdir: validated config, lock, resume, results on disk.

Layout of a workdir:
  config.json            the resolved config and the ltjax version (a different config is refused)
  results.jsonl / .csv   one record per ticket per round (rewritten atomically each round)
  curves/round_XX.npz    validation/training curves [num_evals, K] and the ticket ids
  masks/round_XX.npz     each trial's ticket mask for the round (bit-packed)
  tensorboard/<ticket>/  live TensorBoard curves: round_XX/{train_loss,val_loss,val_accuracy}
  checkpoints/           orbax: lineage after every round (init weights, masks), mid-round states

Crash safety: each round's files are written before its checkpoint; on restart the latest
checkpoint decides where to resume and rewriting a round's records replaces any earlier copy, so
a kill at any moment loses at most the work since the last checkpoint and duplicates nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
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
from ltjax import data, lottery
from ltjax.core import tickets
from ltjax.data import prepare
from ltjax.engine import parallel, runtime, train
from ltjax.methods import at_init
from ltjax.run import checkpoint, progress, results, tensorboard, validation

CONFIG = "config.json"
_LOCK = ".lock"
_RESULT_FILES = (CONFIG, results.RESULTS, results.RESULTS_CSV)
_RESULT_DIRS = ("curves", "masks", "checkpoints", "tensorboard")
# Fields that change how a run executes, not what it computes: may differ on resume.
_EXECUTION_ONLY = ("execution", "data_dir")


UsageError = validation.UsageError  # bad input: one line for the user, never a traceback


def validate(cfg) -> None:
  """Raise UsageError for any config a run cannot honour, before anything is trained or written."""
  validation.check(cfg)


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


def load_dataset(cfg, log: Callable[[str], None] = print) -> data.Dataset:
  """The config's dataset; one that is not on disk yet is prepared first (`ltjax.data.prepare`)."""
  if cfg.dataset == "synthetic":
    return data.synthetic(validation_size=min(cfg.validation_size, 1000))
  load = lambda: data.load(cfg.dataset, data_dir=cfg.data_dir or None,  # noqa: E731
                           validation_size=cfg.validation_size, normalization=cfg.normalization)
  try:
    try:
      return load()
    except data.DatasetNotFoundError:
      if jax.process_index() == 0:
        prepare.prepare(cfg.dataset, cfg.data_dir or None, os.environ.get(prepare.MANUAL_DIR_ENV),
                        log=log)
      runtime.barrier("dataset_prepared")
      return load()
  except (data.DatasetNotFoundError, ValueError, ImportError, OSError) as e:
    raise UsageError(str(e).splitlines()[0]) from None


# ---------------------------------------------------------------- the sink that persists rounds
class WorkdirSink:
  """Reports progress, writes each round's files and live TensorBoard curves, checkpoints the
  lineage (and mid-round states)."""

  def __init__(self, workdir: pathlib.Path, setup: lottery.Setup, ckpt: checkpoint.Checkpoints,
               log: Callable[[str], None], log_every_s: float = 5.0, writer: bool = True,
               status: Callable[[str], None] | None = None, first_round: int = 0):
    self.workdir, self.setup, self.ckpt, self.log = workdir, setup, ckpt, log
    self.writer = writer  # only one process writes results; all take part in checkpoints
    self.status = status  # called on every report when given; else `log` every `log_every_s`
    self.log_every_s = log_every_s
    self._last_log = 0.0
    self._last_ckpt_step = 0
    cfg = setup.cfg
    self.run = progress.RunProgress(
        [len(lottery.lineup(cfg, r)) for r in range(lottery.num_rounds(cfg))], cfg.train.steps,
        first_round)
    self._tb: dict[str, tensorboard.EventWriter] = {}
    self._tb_step: dict[int, int] = {}  # per round: the last step written to TensorBoard

  def progress(self, round_index, step, snapshot, curves):
    cfg = self.setup.cfg
    now = time.perf_counter()
    every = cfg.execution.checkpoint_every
    # Round 0 of a rewinding run holds theta_k outside the states: it restarts rather than resumes.
    resumable = not (lottery.rewinding(cfg) and round_index == 0)
    if every and resumable and step < cfg.train.steps and step - self._last_ckpt_step >= every:
      self._save_midround(round_index, step, *snapshot(), curves)
    if not self.writer:
      return
    val = np.asarray(curves.val_loss)
    finite = val[np.isfinite(val)]
    line = progress.RunProgress.line(self.run.update(round_index, step, now),
                                     float(finite.min()) if finite.size else None)
    if self.status is not None:
      self.status(line)
    elif now - self._last_log >= self.log_every_s or step == cfg.train.steps:
      self._last_log = now
      self.log(line)
    self._write_tensorboard(round_index, curves)

  def _write_tensorboard(self, round_index, curves):
    """New evaluation points of the round, one TensorBoard run per ticket (kind, trial, draw)."""
    ids = lottery.lineup(self.setup.cfg, round_index)
    steps = np.asarray(curves.step)
    last = self._tb_step.get(round_index, -1)
    metrics = {m: np.asarray(getattr(curves, m)) for m in ("train_loss", "val_loss", "val_accuracy")}
    for col, tid in enumerate(ids):
      name = f"{tid.kind}_trial{tid.trial}" + (f"_draw{tid.draw}" if tid.kind == tickets.REINIT else "")
      if name not in self._tb:
        self._tb[name] = tensorboard.EventWriter(self.workdir / "tensorboard" / name)
      for row in np.nonzero(steps[:, col] > last)[0]:
        self._tb[name].scalars(int(steps[row, col]), {
            f"round_{round_index:02d}/{m}": v[row, col] for m, v in metrics.items()})
      self._tb[name].flush()
    if steps.size:
      self._tb_step[round_index] = max(last, int(steps.max()))

  def close(self):
    for w in self._tb.values():
      w.close()

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
                       log: Callable[[str], None] = print,
                       status: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
  """Run (or resume) the experiment `cfg` in `workdir`; returns all result records.

  In a multi-process run (`runtime.join_cluster` first) every process computes its share of the
  tickets and takes part in checkpoints; only process 0 writes results and logs. `status`, if
  given, receives the progress line (steps, model-steps/s, time left) at every report; otherwise
  it goes to `log` every few seconds.
  """
  if not str(workdir).strip():
    raise UsageError("workdir: must not be empty (give the directory for results and checkpoints)")
  validate(cfg)
  dataset, setup = _build(cfg, log)
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
      sink = WorkdirSink(workdir, setup, ckpt, log, writer=writer, status=status,
                         first_round=lineage.round)
      log(f"{cfg.name}: {cfg.model} on {dataset.name}, {lottery.num_rounds(cfg)} rounds "
          f"from round {lineage.round}, {setup.trainer.layout.describe()}, {jax.process_count()} "
          f"process(es), ticket_batch {setup.trainer.ticket_batch}, unroll {setup.trainer.unroll}")
      try:
        lottery.run_rounds(setup, dataset, sink, lineage, resume)
      finally:
        sink.close()
    finally:
      ckpt.close()
  runtime.barrier("results_written")
  return results.read(workdir)


def _build(cfg, log=print) -> tuple[data.Dataset, lottery.Setup]:
  """Devices, data and the compiled pieces' setup: every check that needs them, before writing."""
  ex = cfg.execution
  try:
    runtime.start(ex.cpu_devices, ex.compilation_cache, ex.compilation_cache_dir,
                  cfg.train.matmul_precision)
  except parallel.LayoutError as e:
    raise UsageError(str(e)) from None
  except OSError as e:
    raise UsageError(f"execution.compilation_cache_dir: cannot use it: {e.strerror or e}") from None
  dataset = load_dataset(cfg, log)
  validation.check_data(cfg, len(dataset.train))
  try:
    setup = lottery.build(cfg, dataset)
  except parallel.LayoutError as e:
    raise UsageError(f"execution.mesh: {e}") from None
  if cfg.prune.mode == "at_init":  # every density must be reachable before anything is trained
    shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
    ones = jax.tree.map(lambda x: np.ones(x.shape, bool), shapes)
    for d in cfg.prune.densities:
      try:
        at_init.removal_schedule(ones, setup.kinds, d, cfg.prune.scope)
      except at_init.CriterionError as e:
        raise UsageError(f"prune.densities: {e}") from None
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
  if lineage.round >= lottery.num_rounds(setup.cfg) or not ckpt.has_midround():
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
