"""A lottery experiment bound to a workdir: validated config, lock, resume, results on disk.

The workdir's layout, lock and config check are `workdir`; what writes its files, `writers`.

Crash safety: each round's files are written before its checkpoint; on restart the latest
checkpoint decides where to resume and rewriting a round's records replaces any earlier copy, so
a kill at any moment loses at most the work since the last checkpoint and duplicates nothing.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Any, Callable, Sequence

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from ltjax import data, files, lineup, lottery, models, wiring
from ltjax.core import pruning
from ltjax.data import prepare
from ltjax.engine import parallel, runtime, timing, train
from ltjax.methods import modes
from ltjax.runs import checkpoint, lineage_file, results, validation
from ltjax.runs.workdir import (  # noqa: F401 -- also this module's names, as callers know them
  CONFIG,
  _writable_dir,
  config_dict,
  locked,
  prepare_workdir,
)
from ltjax.runs.writers import WorkdirSink, lineage_tree

UsageError = validation.UsageError  # bad input: one line for the user, never a traceback


def validate(cfg, network=None) -> None:
  """Raise UsageError for any config a run cannot honour, before anything is trained or written."""
  validation.check(cfg, network)


def load_dataset(cfg, log: Callable[[str], None] = print, arrays=None) -> data.Dataset:
  """The config's dataset: `arrays` given through the API, a loader named 'package.module:fn',
  'synthetic', or a TFDS dataset, prepared first if it is not on disk yet (`ltjax.data.prepare`)."""
  try:
    if arrays is not None:
      return data.from_user_arrays(arrays, name=cfg.dataset, validation_size=cfg.validation_size,
                                   normalization=cfg.normalization)
    if ":" in cfg.dataset and not data.is_versioned(cfg.dataset):
      return data.from_import(cfg.dataset, cfg.validation_size, cfg.normalization)
  except data.DataError as e:
    raise UsageError(str(e)) from None
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


# ---------------------------------------------------------------- the entry points
def run(cfg, workdir: str | os.PathLike, network=None, dataset=None, roles=None, restart: bool = False,
        log: Callable[[str], None] = print,
        status: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
  """`train_and_evaluate` on a copy of `cfg` that names what the API was given: the network
  (config.model, for the records and the resume check), the data (config.dataset: 'arrays', or
  a string given is the dataset's name or loader path) and the role overrides (config.roles)."""
  if not hasattr(cfg, "unlocked"):
    raise UsageError(f"config: expected a ConfigDict (ltjax.config(...)), got {type(cfg).__name__}")
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    if network is not None:
      cfg.model = models.describe(network)
    if isinstance(dataset, str):
      cfg.dataset, dataset = dataset, None
    elif dataset is not None:
      cfg.dataset = dataset.name if isinstance(dataset, data.Dataset) and dataset.name else "arrays"
    if roles is not None:
      try:
        cfg.roles = tuple(f"{p}={r}" for p, r in models.network.role_map(roles).items())
      except (models.ModelError, TypeError, AttributeError) as e:
        raise UsageError(f"roles: expected a mapping pattern -> role ({e})") from None
  return train_and_evaluate(cfg, workdir, restart, log, status, network=network, arrays=dataset)


def train_and_evaluate(cfg, workdir: str | os.PathLike, restart: bool = False,
                       log: Callable[[str], None] = print,
                       status: Callable[[str], None] | None = None, network=None,
                       arrays=None) -> list[dict[str, Any]]:
  """Run (or resume) the experiment `cfg` in `workdir`; returns all result records.

  In a multi-process run (`runtime.join_cluster` first) every process computes its share of the
  tickets and takes part in checkpoints; only process 0 writes results and logs. `status`, if
  given, receives the progress line (steps, model-steps/s, time left) at every report; otherwise
  it goes to `log` every few seconds. `network` and `arrays` (see `run`) stand in for the
  config's model and dataset.
  """
  if not isinstance(workdir, (str, os.PathLike)):
    raise UsageError(f"workdir: expected a path, got {type(workdir).__name__}")
  if not str(workdir).strip():
    raise UsageError("workdir: must not be empty (give the directory for results and checkpoints)")
  validate(cfg, network)
  cfg = wiring.with_method_defaults(cfg)  # config.json records what 'auto' meant
  dataset, setup = _build(cfg, log, network, arrays)
  writer = jax.process_index() == 0
  log = log if writer else (lambda _: None)
  workdir = pathlib.Path(workdir)
  with (locked(_writable_dir(workdir)) if writer else contextlib.nullcontext()):
    was = config_text(workdir)
    if writer:
      if not restart:  # records a resumed run would add to must be records, before it writes or trains
        try:
          results.read(workdir)
        except results.RecordsError as e:
          raise UsageError(f"workdir: {e} (move it away, or start over with --restart)") from None
      prepare_workdir(workdir, cfg, restart)
    runtime.barrier("workdir_ready")  # others read checkpoints only after a restart cleared them
    ckpt = checkpoint.Checkpoints(workdir)
    try:
      with timing.phase("resume"):
        lineage, resume = _restore(setup, ckpt, log, workdir)
        check_continues(setup, lineage, [workdir], [was])
      sink = WorkdirSink(workdir, setup, ckpt, log, writer=writer, status=status,
                         first_round=lineage.round)
      log(f"{cfg.name}: {cfg.model} on {dataset.name}, {lineup.num_rounds(cfg)} rounds "
          f"from round {lineage.round}, {setup.trainer.layout.describe()}, {jax.process_count()} "
          f"process(es), ticket_batch {setup.trainer.ticket_batch}, unroll {setup.trainer.unroll}")
      try:
        with timing.phase("host work"):  # what the phases inside (training, test, writes) leave
          lottery.run_rounds(setup, dataset, sink, lineage, resume)
      finally:
        sink.close()
    finally:
      ckpt.close()
  runtime.barrier("results_written")
  return results.read(workdir)


def _build(cfg, log=print, network=None, arrays=None) -> tuple[data.Dataset, wiring.Setup]:
  """Devices, data and the compiled pieces' setup: every check that needs them, before writing."""
  ex = cfg.execution
  try:
    with timing.phase("devices"):
      runtime.start(ex.cpu_devices, ex.compilation_cache, ex.compilation_cache_dir,
                    cfg.train.matmul_precision)
  except parallel.LayoutError as e:
    raise UsageError(str(e)) from None
  except OSError as e:
    raise UsageError(f"execution.compilation_cache_dir: cannot use it: {e.strerror or e}") from None
  with timing.phase("data"):
    dataset = load_dataset(cfg, log, arrays)
  validation.check_data(cfg, len(dataset.train))
  with timing.phase("setup"):
    return _set_up(cfg, dataset, network)


def _set_up(cfg, dataset, network) -> tuple[data.Dataset, wiring.Setup]:
  try:
    setup = wiring.build(cfg, dataset, network)
  except parallel.LayoutError as e:
    raise UsageError(f"execution.mesh: {e}") from None
  except models.ModelError as e:
    raise UsageError(str(e) if str(e).startswith(("model", "roles")) else f"model: {e}") from None
  except pruning.PruningError as e:
    raise UsageError(f"prune: {e}") from None
  mode = modes.get(cfg.prune.mode)
  try:  # the mode's own checks against the network's shapes
    if mode.check is not None:
      mode.check(setup)
  except pruning.PruningError as e:
    raise UsageError(f"prune: {e}") from None
  trains = mode.trains
  for r in range(1, lineup.num_rounds(cfg)) if trains is not None else ():
    try:  # every round's in-loop updates are buildable (shapes, types, densities) before writing
      trains(setup, r)
    except pruning.PruningError as e:
      raise UsageError(f"prune: {e}") from None
  if cfg.prune.mode == "at_init":  # every density must be reachable before anything is trained
    shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
    ones = jax.tree.map(lambda x: np.ones(x.shape, bool), shapes)
    for d in cfg.prune.densities:
      try:
        pruning.density_counts(ones, setup.roles, d, cfg.prune.scope)
      except pruning.PruningError as e:
        raise UsageError(f"prune.densities: {e}") from None
  return setup.trainer.layout.replicate(dataset), setup


def _restore(setup: wiring.Setup, ckpt: checkpoint.Checkpoints, log, workdir: pathlib.Path):
  """The lineage to continue from and, if a round was interrupted, its saved training state: the
  latest round checkpoint, or lineage.npz where it is further on (a workdir copied without its
  checkpoints, or one killed between the two writes)."""
  fresh = lineup.initial_lineage(setup)
  saved = ckpt.latest_round(lineage_tree(fresh))
  lineage = fresh
  if saved is not None:
    next_round, tree, meta = saved
    lineage = flax.serialization.from_state_dict(fresh, jax.tree.map(jnp.asarray, tree))
    lineage = lineage.replace(round=int(meta["round"]))
  carried = lineage_file.rounds(workdir)
  further = max(carried, default=0)
  source = ""
  if further > lineage.round:  # (only a file that will be used must fit the config's theta_0)
    lineage, source = lineage_file.load(carried[further], fresh), f" ({carried[further].name})"
  if lineage.round:
    log(f"resuming after round {lineage.round - 1}{source}")
  return lineage, restore_midround(setup, ckpt, lineage, log)


def check_continues(setup: wiring.Setup, lineage, workdirs, configs: Sequence[str | None]) -> None:
  """UsageError (one line) where a run given more IMP rounds cannot go on: its last round finished
  before ltjax kept the masks of a round past it (`lottery.prunes_past_last_round`), or that cut
  would have emptied a layer; its lineage then still holds the last round's masks, and the next
  round would retrain them under its own name. Told by the finding cost: the masks a round finds
  count that round's training. `configs`: each workdir's config.json as it was, put back."""
  cfg, r = setup.cfg, lineage.round
  if not (lottery.prunes_past_last_round(cfg) and 0 < r < lineup.num_rounds(cfg)):
    return
  found = np.asarray(lineage.found_after)
  trials = len(found) // len(workdirs)
  for p, workdir in enumerate(workdirs):
    before = [rec.get("finding_steps") for rec in results.read(workdir)
              if rec["round"] == r - 1 and rec["kind"] == "ticket" and rec["trial"] == 0]
    if before and before[0] is not None and int(found[p * trials]) == int(before[0]):
      for w, text in zip(workdirs, configs):  # the run as it was: its own command still resumes it
        if text is not None and jax.process_index() == 0:
          files.write_atomic(pathlib.Path(w) / CONFIG, text)
      raise UsageError(f"workdir {workdir}: its last round ({r - 1}) left no masks for a further "
                       "round (a dense-only run, one finished before ltjax kept them, or a cut that "
                       "would empty a layer); train more rounds with --restart, or in another workdir")


def config_text(workdir) -> str | None:
  """config.json as it is (before this run rewrites it), or None."""
  try:
    return (pathlib.Path(workdir) / CONFIG).read_text()
  except OSError:
    return None


def restore_midround(setup: wiring.Setup, ckpt: checkpoint.Checkpoints, lineage, log, **expect):
  """(step, states, tracker, curves) of round `lineage.round` from `ckpt`'s mid-round checkpoint,
  or None: there is none, it is torn, or it belongs to another round (or to a meta other than
  `expect`, e.g. other points side by side)."""
  if lineage.round >= lineup.num_rounds(setup.cfg) or not ckpt.has_midround():
    return None
  ids = lineup.lineup(setup.cfg, lineage.round)
  states = lineup.start_states(setup, lineage, ids)
  target = {"states": flax.serialization.to_state_dict(states),
            "tracker": flax.serialization.to_state_dict(setup.trainer.new_tracker(states))}
  mid = ckpt.latest_midround(target)
  if mid is None:
    return None
  step, tree, meta = mid
  if meta["round"] != lineage.round or any(meta.get(k) != v for k, v in expect.items()):
    return None  # stale: belongs to a round whose checkpoint already exists, or to another run
  tree = jax.tree.map(jnp.asarray, tree)
  states = flax.serialization.from_state_dict(states, tree["states"])
  tracker = flax.serialization.from_state_dict(setup.trainer.new_tracker(states), tree["tracker"])
  curves = train.Curves(**{k: jnp.asarray(v) for k, v in meta["curves"].items()})
  log(f"resuming round {lineage.round} at step {step}")
  return step, states, tracker, curves
