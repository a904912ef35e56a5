"""The lottery-ticket experiment: iterative (or one-shot) magnitude pruning with controls.

`run_rounds` is the whole algorithm. Each round trains, as one compiled program, every trial's
ticket and its controls; then each trial's ticket is pruned to give the next round's mask:

    for r in rounds:
        lineup  = tickets + controls of round r (ticket: mask_r * theta_start; reinit: mask_r *
                  fresh; random_mask: shuffled(mask_r) * theta_start; inverted: the mask of the
                  inverted scores; twin: the ticket with another data order; scratch: mask_r *
                  fresh on a schedule of its own)
        trained = train(lineup)                  # K tickets, one program, early stop by val loss
        mask_{r+1} = prune(trained tickets, mask_r, rates)
        theta_start = theta_0, theta_k (rewinding) or the trained ticket (prune.reset='none')

`next_masks` holds the other ways of finding mask_{r+1}: one-shot from the trained dense net,
at initialization by a criterion (`ltjax.methods.at_init`), early-bird (`ltjax.methods.early_bird`). Everything
else here builds those pieces from a config. Persistence (results, checkpoints, resume) is the
caller's, through the `RoundSink` protocol.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Protocol, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax import models, stability
from ltjax.core import masks as masks_lib
from ltjax.core import pruning, tickets
from ltjax.core import roles as kinds_lib
from ltjax.data import Dataset
from ltjax.engine import optimizers, parallel, train
from ltjax.methods import at_init, early_bird

PyTree = Any


# ---------------------------------------------------------------- the experiment's pieces
@dataclasses.dataclass(frozen=True)
class Setup:
  """What a config resolves to: the network, its layer kinds and rates, and the trainer."""
  cfg: Any
  spec: models.ModelSpec
  init_fn: Callable[[jax.Array], tuple[PyTree, PyTree]]  # key -> (params, model_state)
  kinds: PyTree
  rates: PyTree
  trainer: train.Trainer
  compiled: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)  # per line-up


def build(cfg, dataset: Dataset) -> Setup:
  spec = models.get(cfg.model)
  module = spec.build(dataset.num_classes, **dict(cfg.model_kwargs))
  init_fn = make_init(module, dataset.input_shape)
  params, model_state = jax.eval_shape(init_fn, jax.random.key(0))
  kinds = spec.layer_kinds(params)
  rates = pruning.rates_tree(kinds, _kind_rates(cfg))
  t = cfg.train
  milestones = tuple(m for m in t.milestones if m > 0)
  tx = optimizers.make(t.optimizer, t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                       warmup_steps=t.warmup_steps, milestones=milestones, decay=t.decay,
                       nesterov=t.nesterov)
  layout = parallel.make_layout(cfg.execution.mesh, max_tickets(cfg), t.batch_size,
                                splittable=not jax.tree.leaves(model_state))
  trainer = train.Trainer(module, tx, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
                          ticket_batch=ticket_batch(cfg.execution.ticket_batch, kinds, layout),
                          unroll=unroll(cfg.execution.unroll, kinds), layout=layout)
  return Setup(cfg, spec, init_fn, kinds, rates, trainer)


def max_tickets(cfg) -> int:
  """Tickets in the largest round (a pruned round with every control)."""
  return len(lineup(cfg, 1 if num_rounds(cfg) > 1 else 0))


def make_init(module, input_shape) -> Callable[[jax.Array], tuple[PyTree, PyTree]]:
  """key -> (params, model_state): the module's own initializer, other collections kept apart.

  Compiled as one program: run eagerly, flax's init (a forward pass, the initializers) compiles
  dozens of single-op programs, which dominated the cold start on GPU.
  """
  example = jnp.zeros((1,) + tuple(input_shape), jnp.float32)

  def init_fn(key):
    variables = module.init({"params": key, "dropout": key}, example, train=False)
    return variables["params"], {k: v for k, v in variables.items() if k != "params"}

  return jax.jit(init_fn)


def ticket_batch(setting: int, kinds: PyTree, layout: parallel.Layout = parallel.Layout()) -> int | None:
  """-1 (auto): vmap every device's tickets on accelerators. On CPU, one ticket at a time per
  device when the cores are devices (each core keeps one ticket's weights and Adam state in its
  cache; measured fastest, BUILD_NOTES.md); on one CPU device, chunks of 2 tickets for dense nets
  (1.5x over full vmap at K=16) and one at a time for conv nets (slower vmapped on XLA:CPU)."""
  if setting == -1:
    if jax.default_backend() != "cpu":
      return None
    return 1 if layout.mesh is not None or kinds_lib.CONV in jax.tree.leaves(kinds) else 2
  return None if setting == 0 else setting


def unroll(setting: int, kinds: PyTree) -> bool:
  """-1 (auto): unroll (no device loops) for conv nets on CPU, where XLA runs convolutions inside
  while loops ~70x slower (jax issue #12868); 0 never; 1 always."""
  if setting == -1:
    return jax.default_backend() == "cpu" and kinds_lib.CONV in jax.tree.leaves(kinds)
  return bool(setting)


@dataclasses.dataclass(frozen=True)
class TicketId:
  kind: str    # tickets.TICKET / REINIT / RANDOM_MASK
  trial: int
  draw: int = 0


def lineup(cfg, round_index: int) -> list[TicketId]:
  """Tickets of a round: each trial's ticket, then its controls (in the dense round 0 only the
  twin, whose distance to the dense net measures the dense net's stability)."""
  ids = [TicketId(tickets.TICKET, t) for t in range(cfg.trials)]
  for t in range(cfg.trials):
    for control in (c for c in cfg.controls if c and (round_index or c == tickets.TWIN)):
      draws = cfg.reinit_draws if control == tickets.REINIT else 1
      ids += [TicketId(control, t, d) for d in range(draws)]
  return ids


def key_for(seed: int, *path: int) -> jax.Array:
  """A key per purpose: folding a path of ints into the run's seed keeps every draw reproducible."""
  key = jax.random.key(seed)
  for p in path:
    key = jax.random.fold_in(key, p)
  return key


def _key_data(seed: int, paths: Sequence[Sequence[int]]) -> np.ndarray:
  """Raw `key_for(seed, *path)` per path, stacked on the host. Folded one by one outside any
  program: traced into one, each fold is a threefry hash to compile (a second for a round's keys);
  eagerly, one small program serves every fold of the process."""
  return np.stack([np.asarray(jax.random.key_data(key_for(seed, *p))) for p in paths])


_PURPOSE = {"init": 0, "data": 1, "reinit": 2, "shuffle": 3, "score": 4, "scratch": 5}
_KIND_INDEX = {k: i for i, k in enumerate(tickets.KINDS)}


@flax.struct.dataclass
class Lineage:
  """What carries over between rounds, stacked over trials: the starting weights and the masks."""
  round: int = flax.struct.field(pytree_node=False)   # the next round to train
  init_params: PyTree        # theta_0 per trial
  init_model_state: PyTree
  start_params: PyTree       # theta_0, or theta_k once a rewind point has been saved
  start_model_state: PyTree
  mask: PyTree               # the ticket's mask for `round`
  inverted_mask: PyTree      # the mask with the criterion's scores inverted (the 'inverted' control)
  found_after: jax.Array     # [trials] model-steps of training spent finding `mask` (the cost axis)
  dense_params: PyTree       # trained dense weights (one-shot prunes these every round)


def initial_lineage(setup: Setup) -> Lineage:
  cfg = setup.cfg
  [(params, model_state)] = fresh_inits(
      setup, _key_data(cfg.seed, [(_PURPOSE["init"], t) for t in range(cfg.trials)]))
  ones = jax.jit(jax.vmap(masks_lib.ones))(params)
  return Lineage(round=0, init_params=params, init_model_state=model_state, start_params=params,
                 start_model_state=model_state, mask=ones, inverted_mask=ones,
                 found_after=jnp.zeros(cfg.trials, jnp.int32), dense_params=params)


def start_states(setup: Setup, lineage: Lineage, ids: Sequence[TicketId]) -> train.TrainState:
  """The round's starting TrainStates, one per ticket id (stacked): the trial's ticket reset to
  its start, a fresh init under its mask, or its start under a shuffled or inverted mask.

  Built from a few programs that depend on shapes only (keys, fresh inits, shuffles, assembly),
  so every round and every line-up of a run reuses them: compiling one program per line-up,
  with an initializer inlined per reinit ticket, cost more than a round of tiny training.
  """
  cfg, r = setup.cfg, lineage.round
  fresh_ids = [tid for tid in ids if tid.kind in (tickets.REINIT, tickets.SCRATCH)]
  shuffles = any(tid.kind == tickets.RANDOM_MASK for tid in ids)
  paths = [(_PURPOSE["data"], r, tid.trial, _KIND_INDEX[tid.kind], tid.draw) for tid in ids]
  paths += [(_PURPOSE["reinit"], r, tid.trial, tid.draw) if tid.kind == tickets.REINIT
            else (_PURPOSE["scratch"], r, tid.trial) for tid in fresh_ids]
  if shuffles:
    paths += [(_PURPOSE["shuffle"], r, t) for t in range(cfg.trials)]
  keys = _key_data(cfg.seed, paths)  # split on the host: slicing a key array compiles
  k, f = len(ids), len(fresh_ids)
  data_keys, shuffle_keys = (jax.random.wrap_key_data(x) for x in (keys[:k], keys[k + f:]))
  fresh = fresh_inits(setup, keys[k:k + f])
  shuffled = (_batched(setup, "shuffle", lambda: jax.vmap(
      lambda m, key: tickets.shuffle_mask(m, setup.kinds, key)))(lineage.mask, shuffle_keys)
              if shuffles else None)
  # Each ticket's weights and mask, as rows of pools: [trials] starts, then the fresh inits;
  # [trials] masks, then the shuffled and the inverted ones.
  trials = cfg.trials
  fresh_row = {tid: trials + i for i, tid in enumerate(fresh_ids)}
  mask_offset = {tickets.RANDOM_MASK: trials, tickets.INVERTED: 2 * trials}
  param_rows = np.array([fresh_row.get(tid, tid.trial) for tid in ids], np.int32)
  mask_rows = np.array([mask_offset.get(tid.kind, 0) + tid.trial for tid in ids], np.int32)
  params, mask, model_state = _assemble(
      lineage.start_params, lineage.start_model_state, fresh, lineage.mask,
      shuffled if shuffles else lineage.mask, lineage.inverted_mask, param_rows, mask_rows)
  schedule = ()
  if any(tid.kind == tickets.SCRATCH for tid in ids):  # Scratch-B: its own rate and budget
    scratch = np.array([tid.kind == tickets.SCRATCH for tid in ids])
    schedule = (jnp.asarray(np.where(scratch, cfg.scratch.lr_scale, 1.0), jnp.float32),
                jnp.asarray(np.where(scratch, round_steps(cfg, r), cfg.train.steps), jnp.int32))
  states = setup.trainer.init_states(params, mask, model_state, data_keys, schedule)
  if rewinding(cfg) and r > 0:
    # Rewound tickets continue the schedule from step k (warmup and decay steps stay aligned).
    states = states.replace(opt_state=_set_count(states.opt_state, cfg.prune.rewind_step))
  return states


def _batched(setup: Setup, name: str, make: Callable[[], Callable]) -> Callable:
  """A per-run jitted program (one compile per input shape, reused across rounds): one program
  where eager ops would compile one per op and leaf shape."""
  if name not in setup.compiled:
    setup.compiled[name] = jax.jit(make())
  return setup.compiled[name]


def fresh_inits(setup: Setup, key_data: np.ndarray) -> list[tuple[PyTree, PyTree]]:
  """(params, model_state) of `init_fn` for each raw key, in chunks of `trials` keys (the last
  padded with its own last key): the initial lineage's program serves every chunk, where XLA:CPU
  took 2 s (2 keys) to 5 s (12 keys) to compile one for another count."""
  init = _batched(setup, "init", lambda: jax.vmap(setup.init_fn))
  n = setup.cfg.trials
  chunks = []
  for i in range(0, len(key_data), n):
    part = key_data[i:i + n]
    part = np.concatenate([part, np.repeat(part[-1:], n - len(part), axis=0)])
    chunks.append(init(jax.random.wrap_key_data(part)))
  return chunks


@jax.jit
def _assemble(start_params, start_state, fresh, mask, shuffled, inverted, param_rows, mask_rows):
  """(params, mask, model_state) per ticket: rows of the weight pools (starts, then the fresh
  chunks) under rows of the mask pools (masks, shuffled, inverted), reset to the mask."""
  cat = lambda *trees: jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)  # noqa: E731
  params = parallel.take(cat(start_params, *(p for p, _ in fresh)), param_rows)
  model_state = parallel.take(cat(start_state, *(s for _, s in fresh)), param_rows)
  masks = parallel.take(cat(mask, shuffled, inverted), mask_rows)
  return jax.vmap(tickets.reset)(params, masks), masks, model_state


def rewinding(cfg) -> bool:
  return cfg.prune.rewind_step > 0


def round_steps(cfg, round_index: int) -> int:
  """The round's length: train.steps, or the scratch control's longer budget where it runs."""
  if round_index and tickets.SCRATCH in cfg.controls:
    return round(cfg.train.steps * cfg.scratch.steps_scale)
  return cfg.train.steps


def _set_count(opt_state, step: int):
  try:
    return optax.tree_utils.tree_set(opt_state, count=jnp.full_like(
        optax.tree_utils.tree_get(opt_state, "count"), step))
  except (KeyError, ValueError):
    return opt_state  # a stateless optimizer has no step count to move


def next_masks(setup: Setup, lineage: Lineage, ids: Sequence[TicketId], final_params: PyTree,
               round_index: int, dataset: Dataset | None = None) -> Lineage:
  """The next round's masks: each trial's trained ticket pruned (iterative), its trained dense net
  (one-shot), its theta_0 by a criterion that sees the network and data (at_init), or the dense
  net's magnitude mask once it settles in training (early_bird); with the inverted-score mask
  and the training steps each mask cost."""
  cfg, steps = setup.cfg, setup.cfg.train.steps
  key = key_for(cfg.seed, _PURPOSE["score"], round_index)
  trials = jnp.ones(cfg.trials, jnp.int32)
  inverted = None
  if cfg.prune.mode == "iterative":
    trained = parallel.take(final_params, jnp.asarray(rows(ids, tickets.TICKET)))
    mask = pruning.prune_round(trained, lineage.init_params, lineage.mask, setup.kinds, setup.rates,
                               cfg.prune.scope, cfg.prune.score, key, ticket_axes=1)
    found = lineage.found_after + trials * (steps - (cfg.prune.rewind_step if round_index else 0))
  elif cfg.prune.mode == "at_init":
    density = cfg.prune.densities[round_index]
    mask, found = at_init_masks(setup, lineage, dataset, density, key), 0 * trials
    if _wants(cfg, tickets.INVERTED):
      inverted = at_init_masks(setup, lineage, dataset, density, key, invert=True)
  elif cfg.prune.mode == "oneshot":
    rates = one_shot_rates(setup, lineage, cfg.prune.densities[round_index])
    prune = functools.partial(pruning.prune_round, lineage.dense_params, lineage.init_params,
                              jax.vmap(masks_lib.ones)(lineage.init_params), setup.kinds, rates,
                              cfg.prune.scope, cfg.prune.score, key, ticket_axes=1)
    mask, found = prune(), trials * steps
    if _wants(cfg, tickets.INVERTED):
      inverted = prune(invert=True)
  else:
    draw = early_bird_draw(setup, lineage, dataset, cfg.prune.densities[round_index])
    mask, found = draw.mask, jnp.asarray(np.where(draw.step >= 0, draw.step, draw.steps_trained),
                                          jnp.int32)
  return lineage.replace(mask=mask, inverted_mask=mask if inverted is None else inverted,
                         found_after=found)


def _wants(cfg, control: str) -> bool:
  return control in cfg.controls


def one_shot_rates(setup: Setup, lineage: Lineage, density: float) -> PyTree:
  """Per-leaf rates that take a dense net to `density` in one step (IMP's layer proportions)."""
  sizes = masks_lib.sizes_by_kind(jax.tree.map(lambda x: x[0], lineage.init_params), setup.kinds)
  return pruning.rates_tree(setup.kinds, pruning.one_shot_rates(_kind_rates(setup.cfg), sizes, density))


def early_bird_draw(setup: Setup, lineage: Lineage, dataset: Dataset, density: float) -> early_bird.Draw:
  """Each trial's dense net trained again from theta_0 with round 0's data order until its
  magnitude mask at `density` settles (checked every train.eval_every steps)."""
  cfg = setup.cfg
  ids = [TicketId(tickets.TICKET, t) for t in range(cfg.trials)]
  dense = lineage.replace(round=0, start_params=lineage.init_params,
                          start_model_state=lineage.init_model_state,
                          mask=jax.vmap(masks_lib.ones)(lineage.init_params))
  draw, _ = early_bird.find(setup.trainer, start_states(setup, dense, ids), dataset, setup.kinds,
                            one_shot_rates(setup, lineage, density), cfg.train.eval_every,
                            cfg.train.steps, cfg.prune.early_bird_threshold,
                            cfg.prune.early_bird_patience, cfg.prune.scope)
  return draw


def at_init_masks(setup: Setup, lineage: Lineage, dataset: Dataset, density: float,
                  key: jax.Array, invert: bool = False) -> PyTree:
  """Each trial's mask at `density`, found at its theta_0 by `prune.score` (ltjax.methods.at_init) on
  one training batch drawn per trial; each prunable layer to `density` (layerwise) or all of them pooled (global)."""
  cfg, trainer = setup.cfg, setup.trainer
  out = []
  for t in range(cfg.trials):
    params, model_state = (jax.tree.map(lambda x, t=t: x[t], tree)
                           for tree in (lineage.init_params, lineage.init_model_state))
    k = jax.random.fold_in(key, t)
    idx = jax.random.permutation(k, len(dataset.train))[:trainer.batch_size]
    logits = lambda p, x, ms=model_state: trainer.logits(p, ms, x, train=False)[0]  # noqa: E731
    net = at_init.Network(
        apply=logits, loss=lambda p, x, y, f=logits: train.cross_entropy(f(p, x), y),
        input_shape=dataset.input_shape, images=dataset.normalize(dataset.train.images[idx]),
        labels=dataset.train.labels[idx])
    out.append(at_init.prune_at_init(cfg.prune.score, params, masks_lib.ones(params), setup.kinds,
                                      density, cfg.prune.scope, net, k, invert))
  return parallel.stack(out)


def _kind_rates(cfg) -> dict[str, float]:
  return {kinds_lib.CONV: cfg.prune.conv_rate, kinds_lib.FC: cfg.prune.fc_rate,
          kinds_lib.OUTPUT: cfg.prune.output_rate}


def num_rounds(cfg) -> int:
  """Rounds including the dense round 0."""
  return 1 + (cfg.prune.rounds if cfg.prune.mode == "iterative" else len(cfg.prune.densities))


# ---------------------------------------------------------------- a trained round
@dataclasses.dataclass
class RoundResult:
  """A round's outcome on the host (numpy), with everything the records and the next round need."""
  round: int
  ids: list[TicketId]
  curves: train.Curves                 # [num_evals, K]
  early_stop_step: np.ndarray          # [K]; -1 if never finite
  val_loss: np.ndarray                 # at early stop
  val_accuracy: np.ndarray
  test_accuracy: np.ndarray            # at early stop (evaluated once, on the carried best params)
  final_test_accuracy: np.ndarray
  diverged: np.ndarray
  density: np.ndarray                  # [K] fraction of prunable weights remaining
  finding_steps: np.ndarray            # [K] model-steps of training spent finding the ticket's mask
  layer_density: dict[str, np.ndarray]
  final_params: PyTree                 # stacked; prunes the next mask
  masks: PyTree
  steps_trained: np.ndarray            # [K]
  path_error: np.ndarray               # [K, points] ticket rows: test error on the path to the twin
  seconds: float


class RoundSink(Protocol):
  """Where a run reports: progress inside a round, and each finished round (persist it there)."""

  def progress(self, round_index: int, step: int,
               snapshot: Callable[[], tuple[train.TrainState, train.EarlyStop]],
               curves: train.Curves) -> None: ...

  def round_done(self, result: RoundResult, lineage: Lineage) -> None: ...


def train_round(setup: Setup, lineage: Lineage, dataset: Dataset, sink: RoundSink | None = None,
                resume: tuple[int, train.TrainState, train.EarlyStop, train.Curves] | None = None
                ) -> tuple[RoundResult, Lineage]:
  """Train one round's lineup as one program; returns its result and the lineage for the next."""
  cfg, trainer, r = setup.cfg, setup.trainer, lineage.round
  ids = lineup(cfg, r)
  t0 = time.perf_counter()
  first_step = start = cfg.prune.rewind_step if (rewinding(cfg) and r > 0) else 0
  if resume is not None:
    start, states, tracker, prior = resume
  else:
    states, tracker, prior = start_states(setup, lineage, ids), None, None
  callback = None
  if sink is not None:
    callback = lambda step, snapshot, c: sink.progress(  # noqa: E731
        r, step, snapshot, c if prior is None else train.concat_curves([prior, c]))
  length = round_steps(cfg, r)
  run = lambda st, tr, a, b: trainer.train(  # noqa: E731
      st, dataset, length, cfg.train.eval_every, tracker=tr, start_step=a, stop_step=b,
      intervals_per_call=cfg.execution.intervals_per_call, callback=callback)
  ticket_rows = jnp.asarray(rows(ids, tickets.TICKET))
  if rewinding(cfg) and r == 0 and start < cfg.prune.rewind_step:
    states, tracker, c = run(states, tracker, start, cfg.prune.rewind_step)
    prior = c if prior is None else train.concat_curves([prior, c])
    states = fork_twins(states, ids)  # the dense twin leaves its ticket at step k, as tickets will
    lineage = lineage.replace(start_params=parallel.take(states.params, ticket_rows),
                              start_model_state=parallel.take(states.model_state, ticket_rows))
    start = cfg.prune.rewind_step
  states, tracker, curves = run(states, tracker, start, length)
  if prior is not None:
    curves = train.concat_curves([prior, curves])
  _, test_acc = trainer.evaluate_many(tracker.params, states.mask, tracker.model_state, dataset,
                                      dataset.test)
  _, final_acc = trainer.evaluate_many(states.params, states.mask, states.model_state, dataset,
                                       dataset.test)
  density, layer_density = masks_lib.stacked_densities(states.mask, setup.kinds)
  result = RoundResult(
      round=r, ids=ids, curves=train.to_numpy(curves), early_stop_step=np.asarray(tracker.step),
      val_loss=np.asarray(tracker.loss), val_accuracy=np.asarray(tracker.accuracy),
      test_accuracy=np.asarray(test_acc), final_test_accuracy=np.asarray(final_acc),
      diverged=np.asarray(tracker.diverged), density=density,
      layer_density=layer_density,
      finding_steps=np.asarray(lineage.found_after)[[tid.trial for tid in ids]],
      final_params=states.params, masks=states.mask,
      steps_trained=np.array([(length if tid.kind == tickets.SCRATCH else cfg.train.steps) - first_step
                              for tid in ids]),
      path_error=twin_paths(setup, ids, states, dataset),
      seconds=time.perf_counter() - t0)
  trained = parallel.take(states.params, ticket_rows)
  if r == 0:
    lineage = lineage.replace(dense_params=trained)
  if r + 1 < num_rounds(cfg):
    lineage = next_masks(setup, lineage, ids, states.params, r, dataset)
  if cfg.prune.reset == "none":  # fine-tuning: the next round continues from the trained weights
    lineage = lineage.replace(start_params=trained,
                              start_model_state=parallel.take(states.model_state, ticket_rows))
  return result, lineage.replace(round=r + 1)


def rows(ids: Sequence[TicketId], kind: str) -> list[int]:
  """Positions of `kind`'s tickets in a line-up, in trial order."""
  return [i for i, tid in enumerate(ids) if tid.kind == kind]


def fork_twins(states: train.TrainState, ids: Sequence[TicketId]) -> train.TrainState:
  """Each twin takes its trial's ticket's weights and optimizer state; it keeps its data order."""
  twins = rows(ids, tickets.TWIN)
  if not twins:
    return states
  source = np.arange(len(ids))
  source[twins] = [rows(ids, tickets.TICKET)[ids[i].trial] for i in twins]
  forked = parallel.take(states, jnp.asarray(source))
  return forked.replace(rng=states.rng)


def twin_paths(setup: Setup, ids: Sequence[TicketId], states: train.TrainState,
               dataset: Dataset) -> np.ndarray:
  """[K, points] test error along the line from each ticket to its twin (NaN elsewhere)."""
  points = setup.cfg.stability.points
  out = np.full((len(ids), points), np.nan)
  twins = rows(ids, tickets.TWIN)
  if not twins:
    return out
  tickets_at = rows(ids, tickets.TICKET)
  theirs = np.array([tickets_at[ids[j].trial] for j in twins])
  errors = stability.path_errors(
      setup.trainer, parallel.take(states.params, theirs), parallel.take(states.params, twins),
      parallel.take(states.mask, twins), parallel.take(states.model_state, theirs),
      parallel.take(states.model_state, twins), dataset, dataset.test, points)
  for j, e in zip(twins, errors):
    out[tickets_at[ids[j].trial]] = e
  return out


def run_rounds(setup: Setup, dataset: Dataset, sink: RoundSink | None = None,
               lineage: Lineage | None = None, resume=None) -> Lineage:
  """Train every remaining round, from `lineage` (default: a fresh start) to the last."""
  lineage = initial_lineage(setup) if lineage is None else lineage
  while lineage.round < num_rounds(setup.cfg):
    result, next_lineage = train_round(setup, lineage, dataset, sink, resume)
    resume = None
    if sink is not None:
      sink.round_done(result, next_lineage)
    lineage = next_lineage
  return lineage
