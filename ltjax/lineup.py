"""A round's line-up: which tickets train (each trial's ticket and its controls), the lineage
they descend from, and the state each starts in.

Controls (`ltjax.core.tickets`): reinit (the mask on a fresh init), random_mask (the mask
shuffled within each layer), inverted (the inverted-score mask), twin (the ticket with another
data order) and scratch (a fresh init on a schedule of its own). Every random draw comes from
`key_for(seed, purpose, ...)`, so a run is reproducible ticket by ticket.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax.core import masks as masks_lib
from ltjax.core import structure, tickets
from ltjax.engine import oneoff, parallel, train
from ltjax.methods import modes

PyTree = Any


@dataclasses.dataclass(frozen=True)
class TicketId:
  kind: str    # tickets.TICKET or one of the controls (tickets.KINDS)
  trial: int
  draw: int = 0


@dataclasses.dataclass(frozen=True)
class Points:
  """Sweep points trained side by side as one program (`ltjax.runs.together`). Lineage l is
  trial l % trials of point l // trials and draws every key as that trial of the point's own run
  would; the points differ only in what the ticket axis carries per ticket."""
  trials: int                          # per point
  lr_scale: tuple[float, ...]          # per point: its train.lr over the run's
  scratch_lr_scale: tuple[float, ...]  # per point: its scratch.lr_scale
  init_fns: tuple[Callable, ...] = ()  # per point, where their initializers differ
  scratch_steps: tuple[int, ...] = ()  # per point, where their scratch budgets differ: train.steps x
                                       # scratch.steps_scale (the round runs the longest)
  rewind_steps: tuple[int, ...] = ()   # per point, where their rewind steps differ (a pruned round
                                       # runs from the earliest; each ticket starts at its own)
  seeds: tuple[int, ...] = ()          # per point, where their seeds differ


def trial_in_point(setup, lineage_index: int) -> int:
  """The trial a lineage is in its own point's run (itself, without points)."""
  return lineage_index if setup.points is None else lineage_index % setup.points.trials


def point_of(setup, lineage_index: int) -> int:
  return 0 if setup.points is None else lineage_index // setup.points.trials


def seed_of(setup, lineage_index: int) -> int:
  """The seed a lineage draws its keys from: its point's, for points side by side."""
  points = setup.points
  return points.seeds[point_of(setup, lineage_index)] if points is not None and points.seeds else setup.cfg.seed


def num_rounds(cfg) -> int:
  """Rounds including the dense round 0."""
  return 1 + modes.get(cfg.prune.mode).pruned_rounds(cfg)


def lineup(cfg, round_index: int) -> list[TicketId]:
  """Tickets of a round: each trial's ticket, then its controls (in the dense round 0 only the
  twin, whose distance to the dense net measures the dense net's stability)."""
  ids = [TicketId(tickets.TICKET, t) for t in range(cfg.trials)]
  for t in range(cfg.trials):
    for control in (c for c in cfg.controls if c and (round_index or c == tickets.TWIN)):
      draws = 1
      if control == tickets.REINIT:
        draws = cfg.reinit_draws
      elif control in tickets.TWINS:
        draws = cfg.stability.twins
      ids += [TicketId(control, t, d) for d in range(draws)]
  return ids


def max_tickets(cfg) -> int:
  """Tickets in the largest round (a pruned round with every control)."""
  return len(lineup(cfg, 1 if num_rounds(cfg) > 1 else 0))


def rows(ids: Sequence[TicketId], kind: str) -> list[int]:
  """Positions of `kind`'s tickets in a line-up, in trial order."""
  return [i for i, tid in enumerate(ids) if tid.kind == kind]


def rewinding(cfg) -> bool:
  return cfg.prune.rewind_step > 0


def rewind_steps(setup) -> np.ndarray:
  """Each lineage's rewind step k ([trials]; 0 where it resets to theta_0): its point's, for
  points side by side."""
  points = setup.points
  if points is not None and points.rewind_steps:
    return np.array([points.rewind_steps[point_of(setup, t)] for t in range(setup.cfg.trials)])
  return np.full(setup.cfg.trials, setup.cfg.prune.rewind_step)


def first_steps(setup, ids: Sequence[TicketId], r: int) -> np.ndarray:
  """Each ticket's first training step in round `r`: 0 in the dense round, its lineage's rewind
  step in a pruned one (rewound tickets continue from step k), 0 for the scratch control (a fresh
  network trains its whole budget)."""
  if r == 0:
    return np.zeros(len(ids), np.int64)
  scratch = np.array([tid.kind == tickets.SCRATCH for tid in ids], bool)
  return np.where(scratch, 0, rewind_steps(setup)[[tid.trial for tid in ids]])


def round_steps(cfg, round_index: int) -> int:
  """The round's length: train.steps, or the scratch control's longer budget where it runs."""
  if round_index and tickets.SCRATCH in cfg.controls:
    return round(cfg.train.steps * cfg.scratch.steps_scale)
  return cfg.train.steps


# ---------------------------------------------------------------- keys
def key_for(seed: int, *path: int) -> jax.Array:
  """A key per purpose: folding a path of ints into the run's seed keeps every draw reproducible."""
  key = jax.random.key(seed)
  for p in path:
    key = jax.random.fold_in(key, p)
  return key


def _key_data(seeds: Sequence[int], paths: Sequence[Sequence[int]]) -> np.ndarray:
  """Raw `key_for(seed, *path)` per (seed, path), stacked on the host. Folded one by one outside
  any program: traced into one, each fold is a threefry hash to compile (a second for a round's
  keys); eagerly, one small program serves every fold of the process."""
  return np.stack([np.asarray(jax.random.key_data(key_for(s, *p))) for s, p in zip(seeds, paths, strict=True)])


def trial_key(request, lineage_index: int) -> jax.Array:
  """A mode's scoring key for one trial (a `modes.Request`'s lineage), as its own run folds it."""
  setup = request.setup
  point_key = key_for(seed_of(setup, lineage_index), PURPOSE["score"], request.round_index)
  return jax.random.fold_in(point_key, trial_in_point(setup, lineage_index))


def trial_keys(request) -> jax.Array:
  """A mode's scoring keys for every trial at once: the request's key, which the batched
  scorers split over the trials; for points side by side, each lineage's own run's share of that
  split ([trials] keys)."""
  setup = request.setup
  if setup.points is None:
    return request.key
  n = setup.points.trials
  own = [jax.random.key_data(jax.random.split(key_for(seed_of(setup, t), PURPOSE["score"], request.round_index),
                                              n))[trial_in_point(setup, t)] for t in range(setup.cfg.trials)]
  return jax.random.wrap_key_data(np.stack([np.asarray(k) for k in own]))


PURPOSE = {"init": 0, "data": 1, "reinit": 2, "shuffle": 3, "score": 4, "scratch": 5}
_KIND_INDEX = {k: i for i, k in enumerate(tickets.KINDS)}


# ---------------------------------------------------------------- the lineage
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
  dense_params: PyTree       # trained dense weights where the mode prunes them (`Mode.prunes_dense`), else theta_0


def initial_lineage(setup) -> Lineage:
  cfg = setup.cfg
  lineages = range(cfg.trials)
  chunks, _ = fresh_inits(setup, _key_data([seed_of(setup, t) for t in lineages],
                                           [(PURPOSE["init"], trial_in_point(setup, t)) for t in lineages]),
                          [point_of(setup, t) for t in lineages])
  params, model_state = jax.tree.map(lambda *x: jnp.concatenate(x), *chunks) if len(chunks) > 1 else chunks[0]
  ones = oneoff.jit(jax.vmap(masks_lib.ones))(params)
  return Lineage(round=0, init_params=params, init_model_state=model_state, start_params=params,
                 start_model_state=model_state, mask=ones, inverted_mask=ones,
                 found_after=jnp.zeros(cfg.trials, jnp.int32), dense_params=params)


# ---------------------------------------------------------------- where each ticket starts
def start_states(setup, lineage: Lineage, ids: Sequence[TicketId]) -> train.TrainState:
  """The round's starting TrainStates, one per ticket id (stacked): the trial's ticket reset to
  its start, a fresh init under its mask, or its start under a shuffled or inverted mask.

  Built from a few programs that depend on shapes only (keys, fresh inits, shuffles, assembly),
  so every round and every line-up of a run reuses them: compiling one program per line-up,
  with an initializer inlined per reinit ticket, cost more than a round of tiny training.
  """
  cfg, r = setup.cfg, lineage.round
  fresh_ids = [tid for tid in ids if tid.kind in (tickets.REINIT, tickets.SCRATCH)]
  shuffles = any(tid.kind in (tickets.RANDOM_MASK, tickets.TWIN_RANDOM_MASK) for tid in ids)
  trial = lambda tid: trial_in_point(setup, tid.trial)  # noqa: E731 -- keys as in the point's own run
  paths = [(PURPOSE["data"], r, trial(tid), _KIND_INDEX[tid.kind], tid.draw) for tid in ids]
  paths += [(PURPOSE["reinit"], r, trial(tid), tid.draw) if tid.kind == tickets.REINIT
            else (PURPOSE["scratch"], r, trial(tid)) for tid in fresh_ids]
  seeds = [seed_of(setup, tid.trial) for tid in [*ids, *fresh_ids]]
  if shuffles:
    paths += [(PURPOSE["shuffle"], r, trial_in_point(setup, t)) for t in range(cfg.trials)]
    seeds += [seed_of(setup, t) for t in range(cfg.trials)]
  keys = _key_data(seeds, paths)  # split on the host: slicing a key array compiles
  k, f = len(ids), len(fresh_ids)
  data_keys, shuffle_keys = (jax.random.wrap_key_data(x) for x in (keys[:k], keys[k + f:]))
  fresh, fresh_rows = fresh_inits(setup, keys[k:k + f], [point_of(setup, tid.trial) for tid in fresh_ids])
  within = _structure(cfg, lineage.mask) if shuffles else {}
  shuffled = (batched(setup, "shuffle", lambda: jax.vmap(
      lambda m, key: tickets.shuffle_mask(m, setup.roles, key, **within)))(lineage.mask, shuffle_keys)
              if shuffles else None)
  # Each ticket's weights and mask, as rows of pools: [trials] starts, then the fresh inits;
  # [trials] masks, then the shuffled and the inverted ones.
  trials = cfg.trials
  fresh_row = {tid: trials + fresh_rows[i] for i, tid in enumerate(fresh_ids)}
  mask_offset = {tickets.RANDOM_MASK: trials, tickets.TWIN_RANDOM_MASK: trials, tickets.INVERTED: 2 * trials}
  # A control's twin starts as that control (the reinit's first draw): its data order alone differs.
  of = lambda tid: (TicketId(tickets.REINIT, tid.trial, 0) if tid.kind == tickets.TWIN_REINIT  # noqa: E731
                    else tid)
  param_rows = np.array([fresh_row.get(of(tid), tid.trial) for tid in ids], np.int32)
  mask_rows = np.array([mask_offset.get(tid.kind, 0) + tid.trial for tid in ids], np.int32)
  params, mask, model_state = _assemble(
      lineage.start_params, lineage.start_model_state, fresh, lineage.mask,
      shuffled if shuffles else lineage.mask, lineage.inverted_mask, param_rows, mask_rows)
  states = setup.trainer.init_states(params, mask, model_state, data_keys, _schedule(setup, ids, r))
  first = first_steps(setup, ids, r)
  if first.any():
    # Rewound tickets continue the schedule from step k (warmup and decay steps stay aligned).
    states = states.replace(opt_state=_set_count(states.opt_state, first))
  return states


def last_steps(setup, ids: Sequence[TicketId], r: int) -> np.ndarray:
  """Each ticket's last training step in round `r`: train.steps, or a scratch control's budget
  (its own point's, for points side by side)."""
  cfg, points = setup.cfg, setup.points
  scratch = np.array([tid.kind == tickets.SCRATCH for tid in ids], bool)
  budget = np.full(len(ids), round_steps(cfg, r))
  if points is not None and points.scratch_steps:
    budget = np.array([points.scratch_steps[point_of(setup, tid.trial)] for tid in ids])
  return np.where(scratch, budget, cfg.train.steps)


def _schedule(setup, ids: Sequence[TicketId], r: int) -> tuple:
  """Per-ticket (lr_scale, last_step) where tickets follow schedules of their own: the scratch
  control (Scratch-B: its own rate and budget) and points trained side by side at their own
  rates and budgets; (lr_scale, last_step, first_step) where points side by side rewind to steps
  of their own; () where every ticket follows the run's."""
  cfg, points = setup.cfg, setup.points
  scratch = np.array([tid.kind == tickets.SCRATCH for tid in ids])
  if points is None:
    rate, scratch_rate = np.ones(len(ids)), np.full(len(ids), cfg.scratch.lr_scale)
  else:
    at = [point_of(setup, tid.trial) for tid in ids]
    rate = np.array([points.lr_scale[p] for p in at])
    scratch_rate = np.array([points.scratch_lr_scale[p] for p in at])
  first = first_steps(setup, ids, r)
  own_starts = r > 0 and len(set(first.tolist())) > 1
  if not scratch.any() and (rate == 1.0).all() and not own_starts:
    return ()
  schedule = (jnp.asarray(np.where(scratch, rate * scratch_rate, rate), jnp.float32),
              jnp.asarray(last_steps(setup, ids, r), jnp.int32))
  return schedule + (jnp.asarray(first, jnp.int32),) if own_starts else schedule


def _structure(cfg, stacked_mask: PyTree) -> dict:
  """The sparsity type a random-mask control is shuffled within, and the units that feed each other."""
  kind = structure.parse(cfg.prune.get("sparsity_type", "unstructured"))
  one = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape[1:], m.dtype), stacked_mask)
  return {"kind": kind, "chain": structure.unit_chain(one) if kind.kind == "units" else ()}


def batched(setup, name: str, make: Callable[[], Callable]) -> Callable:
  """A per-run jitted program (one compile per input shape, reused across rounds): one program
  where eager ops would compile one per op and leaf shape, compiled as a one-off program."""
  if name not in setup.compiled:
    setup.compiled[name] = oneoff.jit(make())
  return setup.compiled[name]


def fresh_inits(setup, key_data: np.ndarray, points: Sequence[int] = ()
                ) -> tuple[list[tuple[PyTree, PyTree]], list[int]]:
  """(params, model_state) of the initializer for each raw key (of its point's, where points train
  side by side), in chunks of `trials` keys (the last of a point padded with its own last key),
  and each key's row in the chunks' concatenation. One program serves every chunk: XLA:CPU took
  2 s (2 keys) to 5 s (12 keys) to compile one for another count."""
  pts = setup.points
  n = setup.cfg.trials if pts is None else pts.trials
  points = list(points) or [0] * len(key_data)
  chunks, rows = [], [0] * len(key_data)
  for p in sorted(set(points)):
    init_fn = pts.init_fns[p] if pts is not None and pts.init_fns else setup.init_fn
    init = batched(setup, "init" if init_fn is setup.init_fn else f"init_point{p}",
                   lambda f=init_fn: jax.vmap(f))
    mine = [i for i, q in enumerate(points) if q == p]
    for c in range(0, len(mine), n):
      part = key_data[mine[c:c + n]]
      part = np.concatenate([part, np.repeat(part[-1:], n - len(part), axis=0)])
      for j, i in enumerate(mine[c:c + n]):
        rows[i] = len(chunks) * n + j
      chunks.append(init(jax.random.wrap_key_data(part)))
  return chunks, rows


@oneoff.jit
def _assemble(start_params, start_state, fresh, mask, shuffled, inverted, param_rows, mask_rows):
  """(params, mask, model_state) per ticket: rows of the weight pools (starts, then the fresh
  chunks) under rows of the mask pools (masks, shuffled, inverted), reset to the mask."""
  cat = lambda *trees: jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)  # noqa: E731
  params = parallel.take(cat(start_params, *(p for p, _ in fresh)), param_rows)
  model_state = parallel.take(cat(start_state, *(s for _, s in fresh)), param_rows)
  masks = parallel.take(cat(mask, shuffled, inverted), mask_rows)
  return jax.vmap(tickets.reset)(params, masks), masks, model_state


def _set_count(opt_state, steps: np.ndarray):
  """Stacked optimizer states whose rate schedules continue from each ticket's step ([K]). An
  optimizer's own count (Adam's bias correction) stays at 0: its moments start afresh."""
  def move(node):
    if not isinstance(node, optax.ScaleByScheduleState):
      return node
    return node._replace(count=jnp.asarray(steps, node.count.dtype).reshape(node.count.shape))
  return jax.tree.map(move, opt_state, is_leaf=lambda n: isinstance(n, optax.ScaleByScheduleState))
