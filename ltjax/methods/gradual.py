"""Gradual magnitude pruning (Zhu & Gupta 2017) inside the compiled training loop.

The four choices of a sparse network, composed: the algorithm (magnitude), the distribution of
each update's density over layers (`ltjax.core.distributions`), the schedule (`schedules.Polynomial`)
and the type (`ltjax.core.structure`). The host turns them into one exact table of kept weights
(or units, or blocks) per update step and layer; once the compiled loop has taken t steps, t an
update step, each layer keeps its table entry of its largest-magnitude live weights. Pruned weights
stay pruned and are exactly 0.0 from that step on. Under the ticket map every ticket prunes its own
weights at the same steps; between updates a step pays one comparison.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import wiring
from ltjax.core import distributions, masks, schedules, structure
from ltjax.core.pruning import PruningError
from ltjax.core.roles import PRUNABLE
from ltjax.methods import modes

PyTree = Any


@dataclasses.dataclass(frozen=True)
class GradualPruning:
  """A `Trainer.mask_updates`: after `steps[u]` steps, leaf i keeps `keep[u][i]` groups (-1: not pruned)."""
  steps: tuple[int, ...]
  keep: tuple[tuple[int, ...], ...]
  sparsity_type: str = "unstructured"
  settled_at: int = 0  # the step from which the network has its final density (early stop waits)
  chain: tuple[int, ...] = ()  # units: kernel leaves in forward order; a unit's outgoing row goes with it

  def __call__(self, trainer, state, images, labels, step):
    done = step + 1  # steps taken once this one is: the schedule's t
    steps = jnp.asarray(self.steps, jnp.int32)
    u = jnp.clip(jnp.searchsorted(steps, done), 0, len(self.steps) - 1)
    return jax.lax.cond(steps[u] == done, lambda st: self.prune(st, u), lambda st: st, state)

  def prune(self, state, u):
    """`state` with update u's masks, its pruned weights zeroed."""
    mask = self.masks_of(state.params, state.mask, u)
    return state.replace(mask=mask, params=masks.apply(state.params, mask))

  def masks_of(self, params, alive, u):
    """Update u's masks for `params` (one ticket): each pruned leaf's `keep[u][i]` groups of largest
    magnitude among those `alive`; a pruned unit's outgoing weights go with it."""
    kind = structure.parse(self.sparsity_type)
    keep = jnp.asarray(self.keep, jnp.int32)[u]
    leaves, treedef = jax.tree.flatten(alive)
    new = [kind.select(jnp.abs(p), m, keep[i]) if self.keep[0][i] >= 0 else m
           for i, (p, m) in enumerate(zip(jax.tree.leaves(params), leaves))]
    return jax.tree.unflatten(treedef, structure.couple_chain(new, self.chain))


def gradual_pruning(params: PyTree, roles: PyTree, schedule: schedules.Polynomial, steps: int,
                    distribution: str = "uniform", sparsity_type: str = "unstructured",
                    role_rates: Mapping[str, float] | None = None) -> GradualPruning:
  """The compiled loop's pruning for one network (`params`: one ticket's arrays or shapes):
  every check first, one line each (a schedule past the run, a type the shapes cannot take)."""
  schedule.check(steps)
  kind = structure.parse(sparsity_type)
  if kind.kind == "n:m":
    raise PruningError(f"{kind} sparsity has one density ({kind.n}/{kind.m}); a gradual schedule "
                       "cannot move it (prune to N:M in one step instead)")
  at = schedule.update_steps()
  sparsity = schedule.sparsity(at)
  if at[0] == 0:  # the loop updates after a step; a mask at step 0 is the one training starts with
    if sparsity[0] > 0:
      raise PruningError(f"a gradual schedule that starts at step 0 must start dense (initial "
                         f"sparsity 0, got {schedule.initial}); prune the starting mask instead")
    at, sparsity = at[1:], sparsity[1:]
  rows, chain = keep_table(params, roles, sparsity, kind, distribution, role_rates)
  return GradualPruning(tuple(int(t) for t in at), rows, str(kind), chain=chain)


def keep_table(params: PyTree, roles: PyTree, sparsity, kind: structure.Structure,
               distribution: str = "uniform", role_rates: Mapping[str, float] | None = None
               ) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
  """(each update's kept groups per leaf, -1 where a leaf is not pruned; the units chain) at the
  sparsities `sparsity` spread by `distribution`. N:M keeps N of M whatever its row says (0)."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  leaf_roles = jax.tree.leaves(roles)
  chain = structure.unit_chain(params) if kind.kind == "units" else ()
  for i, ((path, leaf), role) in enumerate(zip(flat, leaf_roles)):
    if role in PRUNABLE:
      kind.check(tuple(leaf.shape), masks.path_str(path))
    if chain and i == chain[-1]:  # the output layer's units are the classes
      leaf_roles[i] = "kept"
  if chain and distribution != "uniform":
    raise PruningError(f"'units' keeps the same fraction of every hidden layer's units; distribution "
                       f"{distribution!r} spreads weights (use 'uniform')")
  rows = []
  for s in sparsity:
    # Units: the density is the fraction of each hidden layer's units kept (weights follow from it).
    dens = ([1.0 - float(s)] * len(flat) if chain or kind.kind == "n:m" else
            jax.tree.leaves(distributions.layer_densities(params, roles, 1.0 - float(s), distribution, role_rates)))
    row = []
    for (_, leaf), role, d in zip(flat, leaf_roles, dens):
      if role not in PRUNABLE:
        row.append(-1)
      elif kind.kind == "n:m":
        row.append(0)
      else:
        groups = kind.num_groups(tuple(leaf.shape))
        row.append(int(min(groups, max(1, round(d * groups)))))
    rows.append(tuple(row))
  return tuple(rows), chain


def kept(update: GradualPruning, mask: PyTree) -> np.ndarray:
  """[leaves] the groups each pruned leaf keeps under `mask` (one ticket), to check the table."""
  kind = structure.parse(update.sparsity_type)
  out = []
  for m, k in zip(jax.tree.leaves(mask), update.keep[0]):
    if k < 0:
      out.append(-1)
      continue
    ids = kind.group_ids(m.shape)
    m = np.asarray(m)
    out.append(int(m.sum()) if ids is None else int(np.unique(ids[m]).size))
  return np.array(out)


# ---------------------------------------------------------------- as a lottery mode
def _density(cfg, round_index: int) -> float:
  return cfg.prune.densities[round_index - 1]


def round_pruning(setup, round_index: int) -> GradualPruning:
  """Round r's gradual pruning: from dense at `prune.update_begin` to `prune.densities[r-1]` at
  `prune.update_end`, every `prune.update_every` steps."""
  cfg = setup.cfg
  shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
  schedule = schedules.Polynomial(0.0, 1.0 - _density(cfg, round_index), cfg.prune.update_begin,
                                  cfg.prune.update_end, cfg.prune.update_every)
  return dataclasses.replace(
      gradual_pruning(shapes, setup.roles, schedule, cfg.train.steps, cfg.prune.distribution,
                      cfg.prune.sparsity_type, wiring.role_rates(cfg)),
      settled_at=cfg.prune.update_end)


@modes.register("gmp", trains=round_pruning, defaults={"distribution": "uniform", "update_every": 100},
                structures=("units", "block"))
def find(request: modes.Request) -> modes.Found:
  """GMP: each round trains theta_0 from dense, pruned gradually to its density (Zhu & Gupta)."""
  dense = jax.vmap(masks.ones)(request.lineage.init_params)
  return modes.Found(dense, jnp.zeros(request.setup.cfg.trials, jnp.int32))
