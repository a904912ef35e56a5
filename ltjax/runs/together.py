"""Sweep points trained side by side as one compiled program, each still in its own workdir.

Points that share the network's shapes and the data, and differ only in what the ticket axis
carries per ticket (COMBINABLE: the seed, the learning rate, the scratch control's rate and
budget, the initializer's distribution, the input normalization, the rewind step), become the
lineages of one run: point p's trial t is lineage p*T + t, keyed as trial t of the point's own run
with its own seed (the same theta_0, data orders, reinit draws, shuffles and scoring keys). Each
round is one program for every point; each point's slice of it goes through that point's own
writers to its own workdir, so the workdirs, records, checkpoints and report are those of
separate runs, and a point finished either way is resumed or reported the same way.

Not combined, and why: reset modes (what a lineage restarts from differs in kind), widths (the
shapes differ), pruning rates and rounds (lineages would prune at different rates and stop at
different rounds). Such points run one after another.

Where the points share the learning rate, each matches its own run bit for bit on the same
devices (tests/test_together.py). Where they do not, the rates ride on a per-ticket update scale,
and every point matches its own run up to float rounding (lr*u against (lr*s)*u; XLA fuses the
scaled update differently even where s = 1). Where they differ in normalization, the program
reads batches scaled only by 1 and each ticket standardizes them with its point's statistics
(`train.INPUT_STATS` in its model state, kept out of the point's workdir), so each point again
matches its own run up to rounding. Where their scratch budgets differ (Scratch-E and Scratch-B),
a pruned round runs the longest; each scratch ticket stops at its own point's budget (a per-ticket
last step, as every ticket but scratch already stops at train.steps), and a point's curves end
where its own round does. Where they rewind to different steps k (the stability study), round 0
trains to each k in turn and saves theta_k for the lineages that rewind there; a pruned round
runs from the earliest k, each ticket standing still until its own k (a per-ticket first step)
and validating only after it, so each point again matches its own run bit for bit. A run killed
mid-round resumes from the program's last mid-round checkpoint (every point's states in one, in
the first point's workdir), else restarts that round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from typing import Any, Callable, Sequence

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from ltjax import data, lineup, lottery, models, wiring
from ltjax.engine import parallel, train
from ltjax.runs import checkpoint, experiment, lineage_file, results, validation
from ltjax.runs.workdir import _writable_dir, locked, prepare_workdir
from ltjax.runs.writers import CheckpointWriter, FanOut, ProgressWriter, Sink, WorkdirSink, lineage_tree

COMBINABLE = ("seed", "train.lr", "scratch.lr_scale", "scratch.steps_scale", "model_kwargs.init",
              "normalization", "prune.rewind_step")


def _fields(cfg) -> dict[str, Any]:
  """Dotted field -> value, model_kwargs by key too (one of them, init, may differ), name aside."""
  flat = validation.flatten(cfg)
  flat.update({f"model_kwargs.{k}": v for k, v in flat.pop("model_kwargs").items()})
  flat.pop("name")
  return flat


def differences(configs: Sequence[Any]) -> list[str]:
  """The dotted fields in which `configs` differ (names aside)."""
  flats = [_fields(c) for c in configs]
  fields = sorted(set().union(*flats))
  return [f for f in fields if len({repr(x.get(f)) for x in flats}) > 1]


def why_not(configs: Sequence[Any]) -> str | None:
  """Why these points cannot train as one program, or None when they can."""
  if len(configs) < 2:
    return "a single point"
  other = [f for f in differences(configs) if f not in COMBINABLE]
  if other:
    return f"the points differ in {', '.join(other)} (side by side only: {', '.join(COMBINABLE)})"
  return None  # (nothing here may start JAX: the run chooses its devices first, in _build)


def groups(points: Sequence[tuple[str, Any]]) -> list[list[tuple[str, Any]]]:
  """`points` ((name, config), ...) split into groups that can each train as one program (in
  the order the points come; a point alone where nothing matches it)."""
  out: dict[str, list] = {}
  for name, cfg in points:
    key = repr(sorted((f, repr(v)) for f, v in _fields(cfg).items() if f not in COMBINABLE))
    out.setdefault(key, []).append((name, cfg))
  result = []
  for g in out.values():
    if len(g) > 1 and why_not([c for _, c in g]) is None:
      result.append(g)
    else:
      result += [[p] for p in g]
  return result


def combined_config(configs: Sequence[Any]):
  """The run that holds every point: the first point's config with trials for all of them, and
  rounds as long as the longest scratch budget."""
  cfg = configs[0].copy_and_resolve_references()
  with cfg.unlocked():
    cfg.name = f"{cfg.name}_together"
    cfg.trials = len(configs) * configs[0].trials
    cfg.scratch.steps_scale = max(c.scratch.steps_scale for c in configs)
    cfg.prune.rewind_step = min(c.prune.rewind_step for c in configs)
  return cfg


def train_together(points: Sequence[tuple[str, Any]], root: pathlib.Path | str, restart: bool = False,
                   log: Callable[[str], None] = print,
                   status: Callable[[str], None] | None = None) -> dict[str, list[dict]]:
  """Train `points` ((name, config), `why_not` None) as one program, point `name` in ROOT/name;
  returns each point's records."""
  configs = [wiring.with_method_defaults(c) for _, c in points]
  for c in configs:
    experiment.validate(c)
  reason = why_not(configs)
  if reason:
    raise validation.UsageError(f"these points cannot train as one program: {reason}")
  base = combined_config(configs)
  dataset, setup = experiment._build(base, log)
  if jax.process_count() > 1:
    raise validation.UsageError("points side by side run in one process (use --notogether)")
  init_fns = _init_fns(setup, configs, dataset)
  if "normalization" in differences(configs):  # each ticket standardizes its own (INPUT_STATS)
    channels = len(dataset.mean)
    dataset = dataset.replace(mean=(0.0,) * channels, std=(1.0,) * channels)
  differ = differences(configs)
  per_point = lambda field, get: tuple(get(c) for c in configs) if field in differ else ()  # noqa: E731
  setup = dataclasses.replace(setup, points=lineup.Points(
      configs[0].trials, tuple(c.train.lr / base.train.lr for c in configs),
      tuple(c.scratch.lr_scale for c in configs), init_fns,
      per_point("scratch.steps_scale", lambda c: lineup.round_steps(c, 1)),
      per_point("prune.rewind_step", lambda c: c.prune.rewind_step), per_point("seed", lambda c: c.seed)))
  root = pathlib.Path(root)
  workdirs = [root / name for name, _ in points]
  with contextlib.ExitStack() as stack:
    ckpts = []
    was = []
    for workdir, cfg in zip(workdirs, configs):
      stack.enter_context(locked(_writable_dir(workdir)))
      was.append(experiment.config_text(workdir))
      prepare_workdir(workdir, cfg, restart)
      ckpts.append(checkpoint.Checkpoints(workdir))
      stack.callback(ckpts[-1].close)
    lineage = _restore(setup, ckpts, log, workdirs)
    experiment.check_continues(setup, lineage, workdirs, was)
    # The program's mid-round states, all points in one checkpoint (one point's slice alone cannot
    # restart the others), kept in the first point's workdir (locked above; --restart clears it).
    mid = checkpoint.Checkpoints(workdirs[0], subdir=MIDROUND_DIR)
    stack.callback(mid.close)
    names = [name for name, _ in points]
    resume = experiment.restore_midround(setup, mid, lineage, log, points=names)
    quiet = lambda _: None  # noqa: E731 -- one progress line for the whole run, below
    sinks = [PointSlice(WorkdirSink(w, dataclasses.replace(setup, cfg=_rounds_only(c), points=None), ck,
                                    quiet, first_round=lineage.round), p, setup, c)
             for p, (w, c, ck) in enumerate(zip(workdirs, configs, ckpts))]
    sink = FanOut(*sinks, SideBySideMidround(mid, base, configs, names),
                  ProgressWriter(setup, log, status, lineage.round))
    log(f"{len(points)} points side by side: {lineup.num_rounds(base)} rounds from round "
        f"{lineage.round}, {setup.trainer.layout.describe()}, ticket_batch {setup.trainer.ticket_batch}")
    try:
      lottery.run_rounds(setup, dataset, sink, lineage, resume)
    finally:
      sink.close()
  return {name: results.read(w) for (name, _), w in zip(points, workdirs)}


MIDROUND_DIR = "checkpoints/side_by_side"  # in the first point's workdir


def _rounds_only(cfg):
  """A point's config for its own writers: its workdir gets round checkpoints only (the mid-round
  state is the whole program's, `SideBySideMidround`)."""
  cfg = cfg.copy_and_resolve_references()
  cfg.execution.checkpoint_every, cfg.execution.checkpoint_minutes = 0, 0.0
  return cfg


class SideBySideMidround(CheckpointWriter):
  """Mid-round states of every point at once, as `execution.checkpoint_every`/`_minutes` say; the
  points' own writers save the rounds. Its meta names the points, so other points never resume
  from it."""

  def __init__(self, ckpt: checkpoint.Checkpoints, base, configs, names):
    super().__init__(ckpt, base)
    self.meta = {"points": list(names)}
    # Round 0 holds theta_k outside the states for every point that rewinds.
    self._rewinds = any(lineup.rewinding(c) for c in configs)

  def resumable(self, round_index: int) -> bool:
    return not (self._rewinds and round_index == 0)

  def _save_round(self, result, lineage):
    self.ckpt.clear_midround()  # the points saved their rounds just before (FanOut's order)


def _init_fns(setup, configs, dataset) -> tuple:
  """Each point's initializer where the points' distributions differ (their shapes must agree),
  and its inputs' statistics in the model state where their normalizations differ."""
  differ = differences(configs)
  if "model_kwargs.init" not in differ and "normalization" not in differ:
    return ()
  want = jax.eval_shape(setup.init_fn, jax.random.key(0))
  images = np.asarray(dataset.train.images) if "normalization" in differ else None
  fns = []
  for c in configs:
    fn = setup.init_fn
    if "model_kwargs.init" in differ:
      module, _ = models.resolve(c.model, dataset.num_classes, c.model_kwargs, dataset.input_shape, c.roles)
      fn = wiring.make_init(module, dataset.input_shape)
      if jax.tree.map(lambda x: (x.shape, x.dtype), jax.eval_shape(fn, jax.random.key(0))) != \
          jax.tree.map(lambda x: (x.shape, x.dtype), want):
        raise validation.UsageError(f"model_kwargs.init={c.model_kwargs.init!r} changes the network's shapes")
    if images is not None:
      fn = _with_input_stats(fn, *data.normalization_stats(images, c.normalization))
    fns.append(fn)
  return tuple(fns)


def _with_input_stats(init_fn, mean, std):
  """`init_fn` whose model state also holds the statistics its tickets standardize inputs with."""
  stats = {"mean": np.asarray(mean, np.float32), "std": np.asarray(std, np.float32)}

  def init(key):
    params, model_state = init_fn(key)
    return params, {**model_state, train.INPUT_STATS: jax.tree.map(jnp.asarray, stats)}
  return init


def _own(model_state):
  """A model state as the point's own run holds it (no per-ticket input statistics)."""
  return {k: v for k, v in model_state.items() if k != train.INPUT_STATS}


def _own_lineage(lineage: lineup.Lineage) -> lineup.Lineage:
  return lineage.replace(init_model_state=_own(lineage.init_model_state),
                         start_model_state=_own(lineage.start_model_state))


def _with_stats_of(lineage: lineup.Lineage, full: lineup.Lineage) -> lineup.Lineage:
  """`lineage` (restored from a point's workdir) with the input statistics of `full` put back."""
  if train.INPUT_STATS not in full.init_model_state:
    return lineage
  stats = full.init_model_state[train.INPUT_STATS]
  return lineage.replace(init_model_state={**lineage.init_model_state, train.INPUT_STATS: stats},
                         start_model_state={**lineage.start_model_state, train.INPUT_STATS: stats})


def _restore(setup, ckpts: Sequence[checkpoint.Checkpoints], log, workdirs) -> lineup.Lineage:
  """The lineages of every point at the latest round all of them finished, side by side (from
  their round checkpoints, or their lineage.npz where a workdir came without checkpoints)."""
  fresh = lineup.initial_lineage(setup)
  trials = setup.points.trials
  targets = [slice_lineage(fresh, p, trials) for p in range(len(ckpts))]
  carried = [lineage_file.rounds(w) for w in workdirs]
  steps = [set(c.round_steps()) | set(files) for c, files in zip(ckpts, carried)]
  common = sorted(set.intersection(*steps)) if steps else []
  if not common:
    if any(steps):
      log("the points' checkpoints share no round: starting every point over")
    return fresh
  nxt = common[-1]
  parts = []
  for ck, target, files in zip(ckpts, targets, carried):
    own = _own_lineage(target)
    if nxt in ck.round_steps():
      tree, _ = ck.restore_round(nxt, lineage_tree(own))
      own = flax.serialization.from_state_dict(own, jax.tree.map(jnp.asarray, tree))
    else:
      own = lineage_file.load(files[nxt], own)
    parts.append(_with_stats_of(own, target))
  log(f"resuming after round {nxt - 1}")
  return jax.tree.map(lambda *x: jnp.concatenate(x), *parts).replace(round=nxt)


def slice_lineage(lineage: lineup.Lineage, point: int, trials: int) -> lineup.Lineage:
  # One compiled gather for the whole tree, the same for every point and round (eager indexing
  # compiled one program per leaf shape and per point).
  return parallel.take(lineage, np.arange(point * trials, (point + 1) * trials))


class PointSlice(Sink):
  """One point's share of every call, renumbered as its own run's and cut to its own round's
  length (`cfg`, the point's config), passed to its writers."""

  def __init__(self, inner: Sink, point: int, setup, cfg):
    self.inner, self.point, self.setup, self.cfg = inner, point, setup, cfg
    self.trials = setup.points.trials

  def _rows(self, round_index: int) -> np.ndarray:
    ids = lineup.lineup(self.setup.cfg, round_index)
    return np.array([i for i, tid in enumerate(ids) if tid.trial // self.trials == self.point])

  def _own_steps(self, round_index: int) -> tuple[int, int]:
    """(first, last) step of the point's own round: it starts at its rewind step once pruned."""
    first = self.cfg.prune.rewind_step if round_index else 0
    return first, lineup.round_steps(self.cfg, round_index)

  def progress(self, round_index, step, snapshot, curves):
    first, last = self._own_steps(round_index)
    if not first < step <= last:
      return  # outside the point's own round: its tickets stand still here
    rows = self._rows(round_index)
    own = (np.asarray(curves.step)[:, 0] > first) if len(curves.step) else slice(None)

    def own_snapshot():
      states, tracker = (parallel.take(x, rows) for x in snapshot())
      return (states.replace(model_state=_own(states.model_state)),
              tracker.replace(model_state=_own(tracker.model_state)))
    # The curves grow at every call: sliced on the host, not by a program per length.
    self.inner.progress(round_index, step, own_snapshot, jax.tree.map(lambda x: np.asarray(x)[own][:, rows], curves))

  def round_done(self, result: lottery.RoundResult, lineage: lineup.Lineage):
    mine = slice_result(result, self._rows(result.round), self.point * self.trials)
    # A round side by side may start earlier (an earlier rewind step beside) or run longer (a
    # longer scratch budget) than the point's own: its curves are those of its own round.
    first, last = self._own_steps(result.round)
    steps = np.asarray(mine.curves.step)[:, 0]
    own = (steps > first) & (steps <= last)
    mine = dataclasses.replace(mine, curves=jax.tree.map(lambda x: x[own], mine.curves))
    self.inner.round_done(mine, _own_lineage(slice_lineage(lineage, self.point, self.trials)))

  def close(self):
    self.inner.close()


def slice_result(result: lottery.RoundResult, rows: np.ndarray, first: int) -> lottery.RoundResult:
  """The result of tickets `rows`, their trials renumbered from lineage `first`."""
  k = len(result.ids)
  pick = lambda x: x[rows] if isinstance(x, np.ndarray) and x.ndim and x.shape[0] == k else x  # noqa: E731
  return dataclasses.replace(
      result, ids=[dataclasses.replace(result.ids[i], trial=result.ids[i].trial - first) for i in rows],
      curves=train.Curves(**{f.name: np.asarray(getattr(result.curves, f.name))[:, rows]
                             for f in dataclasses.fields(train.Curves)}),
      **{f.name: pick(getattr(result, f.name)) for f in dataclasses.fields(result)
         if f.name not in ("ids", "curves", "layer_density", "final_params", "masks")},
      layer_density={n: v[rows] for n, v in result.layer_density.items()},
      final_params=parallel.take(result.final_params, jnp.asarray(rows)),
      masks=parallel.take(result.masks, jnp.asarray(rows)))
