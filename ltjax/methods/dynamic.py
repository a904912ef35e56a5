"""Dynamic sparse training inside the compiled loop: SET (Mocanu et al. 2018) and RigL (Evci et
al. 2020), per ticket on the ticket axis.

A network starts at its target density with a random mask spread by a layer distribution
(`random_masks`: ERK or uniform, the "static random" baseline when nothing moves) and keeps it:
every ΔT steps until T_end, each pruned layer drops the `round(f(t) * alive)` live weights of
smallest magnitude and regrows as many among the weights not live after the drop, where f is the
cosine-decayed drop fraction (`schedules.CosineDrop`):

- SET regrows at random (a key per ticket and step);
- RigL regrows where the dense gradient (the masked weights' too) of the step's batch is largest.
  That gradient is computed in the update branch only, so steps without an update pay for one
  comparison of the step counter.

Regrown weights start at exactly 0.0 and their optimizer state starts fresh (params-shaped state
such as Adam's moments is zeroed for them, `optax.tree_map_params`); a layer's live count is the
same after every update, exactly. Ties in either ranking go to the lower index.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax import lineup
from ltjax.core import distributions, masks, schedules
from ltjax.core.pruning import PruningError, drop_lowest
from ltjax.core.roles import PRUNABLE
from ltjax.engine import parallel, train
from ltjax.methods import modes

PyTree = Any
GROWTH = {"set": "random", "rigl": "gradient"}


@dataclasses.dataclass(frozen=True)
class DynamicSparse:
  """A `Trainer.mask_updates`: after `steps[u]` steps, leaf i drops and regrows `swap[u][i]`
  weights (-1: not pruned), regrowing by `growth` ('random' or 'gradient')."""
  steps: tuple[int, ...]
  swap: tuple[tuple[int, ...], ...]
  growth: str

  def __call__(self, trainer, state, images, labels, step):
    done = step + 1
    steps = jnp.asarray(self.steps, jnp.int32)
    u = jnp.clip(jnp.searchsorted(steps, done), 0, len(self.steps) - 1)
    return jax.lax.cond(steps[u] == done, lambda st: self.update(trainer, st, images, labels, u, step),
                        lambda st: st, state)

  def update(self, trainer, state, images, labels, u, step):
    swap = jnp.asarray(self.swap, jnp.int32)[u]
    if self.growth == "gradient":
      grow_scores = jax.tree.map(jnp.abs, dense_gradient(trainer, state, images, labels, step))
    else:
      key = jax.random.fold_in(jax.random.fold_in(train.typed_key(state.rng), 2), step)
      leaves = jax.tree.leaves(state.params)
      keys = jax.random.split(key, len(leaves))
      grow_scores = jax.tree.unflatten(jax.tree.structure(state.params),
                                       [jax.random.uniform(k, p.shape) for k, p in zip(keys, leaves)])
    new, regrown = [], []
    for i, (p, m, g) in enumerate(zip(jax.tree.leaves(state.params), jax.tree.leaves(state.mask),
                                      jax.tree.leaves(grow_scores))):
      if self.swap[0][i] < 0:
        new.append(m)
        regrown.append(jnp.zeros_like(m))
        continue
      kept = drop_lowest(jnp.abs(p).ravel(), m.ravel(), swap[i])
      free = ~kept
      # The k best free weights: removing the k lowest of -score from the free set picks them.
      grown = free & ~drop_lowest(-g.ravel().astype(jnp.float32), free, swap[i])
      new.append((kept | grown).reshape(m.shape))
      regrown.append((grown & ~m.ravel()).reshape(m.shape))
    treedef = jax.tree.structure(state.mask)
    mask, regrown = jax.tree.unflatten(treedef, new), jax.tree.unflatten(treedef, regrown)
    opt_state = optax.tree_map_params(trainer.tx, lambda v, r: jnp.where(r, jnp.zeros_like(v), v),
                                      state.opt_state, regrown)
    return state.replace(mask=mask, params=masks.apply(state.params, mask), opt_state=opt_state)


def dense_gradient(trainer, state, images, labels, step) -> PyTree:
  """The loss gradient of every weight, pruned ones included, on this step's batch."""
  dropout_key = jax.random.fold_in(jax.random.fold_in(train.typed_key(state.rng), 1), step)

  def loss_fn(params):
    return train.cross_entropy(trainer.logits(params, state.model_state, images, True, dropout_key)[0], labels)
  grads = jax.grad(loss_fn)(state.params)
  if trainer.layout.batch_shards > 1:  # each device holds a slice of the batch
    grads = jax.lax.pmean(grads, parallel.BATCH)
  return grads


def _layer_counts(params, roles, density: float, distribution: str) -> list[int]:
  """Each leaf's exact live count at `density` spread by `distribution` (leaves order)."""
  return jax.tree.leaves(distributions.keep_counts(
      params, distributions.layer_densities(params, roles, density, distribution)))


def dynamic_sparse(params: PyTree, roles: PyTree, density: float, method: str,
                   schedule: schedules.CosineDrop, steps: int, distribution: str = "erk") -> DynamicSparse:
  """SET or RigL for one network (`params`: arrays or shapes) at `density`, spread by
  `distribution`; every check first, one line each."""
  if method not in GROWTH:
    raise PruningError(f"dynamic sparse method must be one of {', '.join(GROWTH)}, got {method!r}")
  schedule.check(steps)
  counts = _layer_counts(params, roles, density, distribution)
  pruned = [r in PRUNABLE for r in jax.tree.leaves(roles)]
  sizes = [int(np.prod(p.shape)) for p in jax.tree.leaves(params)]
  if not any(p and c < n for p, c, n in zip(pruned, counts, sizes)):
    raise PruningError(f"density {density:g} leaves every layer dense: nothing to drop and regrow")
  at = schedule.update_steps()
  table = schedules.drop_table(np.array(counts), schedule.drop_fraction(at))
  # A layer kept dense by the distribution has nothing free to regrow into.
  swap = tuple(tuple(int(min(s, n - c)) if p else -1 for s, p, c, n in zip(row, pruned, counts, sizes))
               for row in table)
  return DynamicSparse(tuple(int(t) for t in at), swap, GROWTH[method])


def random_masks(key: jax.Array, params: PyTree, roles: PyTree, density: float,
                 distribution: str = "erk", tickets: int = 1) -> PyTree:
  """[tickets, ...] random masks keeping each layer's exact count of `distribution` at `density`
  (SET's and RigL's start, and the static random baseline), from `key` split over the tickets or
  from [tickets] keys."""
  counts = _layer_counts(params, roles, density, distribution)
  shapes = [tuple(p.shape) for p in jax.tree.leaves(params)]
  treedef = jax.tree.structure(params)

  @jax.jit
  def one(k):
    keys = jax.random.split(k, len(shapes))
    return jax.tree.unflatten(treedef, [
        drop_lowest(jax.random.uniform(kk, s).ravel(), jnp.ones(int(np.prod(s)), bool),
                    int(np.prod(s)) - c).reshape(s) for kk, s, c in zip(keys, shapes, counts)])
  return jax.vmap(one)(key if key.ndim == 1 else jax.random.split(key, tickets))


# ---------------------------------------------------------------- as lottery modes
def round_updates(setup, round_index: int) -> DynamicSparse:
  """Round r's SET or RigL at `prune.densities[r-1]` (the mode's name says which)."""
  cfg = setup.cfg
  shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
  schedule = schedules.CosineDrop(cfg.prune.drop_fraction, cfg.prune.update_end, cfg.prune.update_every,
                                  cfg.prune.update_begin)
  return dynamic_sparse(shapes, setup.roles, cfg.prune.densities[round_index - 1], cfg.prune.mode,
                        schedule, cfg.train.steps, cfg.prune.distribution)


def find(request: modes.Request) -> modes.Found:
  """Static, SET, RigL: each round starts theta_0 from a random mask at its density, spread by
  `prune.distribution` (ERK in Evci et al. 2020)."""
  setup, cfg = request.setup, request.setup.cfg
  shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
  mask = random_masks(lineup.trial_keys(request), shapes, setup.roles, cfg.prune.densities[request.round_index],
                      cfg.prune.distribution, tickets=cfg.trials)
  return modes.Found(mask, jnp.zeros(cfg.trials, jnp.int32))


for _name, _trains in (("set", round_updates), ("rigl", round_updates), ("static", None)):
  modes.register(_name, find, trains=_trains, defaults={"distribution": "erk", "update_every": 100})
