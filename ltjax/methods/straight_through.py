"""Straight-through pruning: every weight trains, through a magnitude mask that follows them.

The network keeps all its weights. The forward pass runs them masked to the largest magnitudes;
the backward pass hands the gradient of the masked weights to every weight, pruned ones included
(the straight-through estimator, as jaxpruner's `SteMagnitudePruning`, and Zhou et al. 2021's
SR-STE for N:M without its decay term). Every ΔT steps, to the end of the run, the mask is chosen
again from all the weights' magnitudes, so a pruned weight whose magnitude grows back returns.
ΔT defaults to 1, as published: with Adam the pruned weights drift by about the learning rate
every step whatever their gradient, so masks chosen every 100 steps swap many weights at once, and
LeNet at 5.6% fell to 89.8% where every step gave 97.7% (BUILD_NOTES).

Training starts dense from theta_0. The sparsity follows Zhu & Gupta's polynomial from dense at
`prune.update_begin` to the round's density at `prune.update_end`, and is held from there. N:M has
one density: every update from `prune.update_begin` on keeps the N largest of each M (from the
end of the first step when that is 0).
The trainer sees `straight_through` and keeps the weights dense (`ltjax.engine.train.Trainer`);
what is validated, recorded and exported is the masked network.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import wiring
from ltjax.core import schedules, structure
from ltjax.core.pruning import PruningError
from ltjax.methods import gradual, modes


@dataclasses.dataclass(frozen=True)
class StraightThrough(gradual.GradualPruning):
  """A `Trainer.mask_updates` that keeps the weights dense: after `steps[u]` steps, leaf i's mask
  becomes its `keep[u][i]` groups of largest magnitude among all its weights."""
  straight_through: ClassVar[bool] = True

  def prune(self, state, u):
    """`state` with update u's masks, chosen among all weights, live or not; no weight is zeroed."""
    return state.replace(mask=self.masks_of(state.params, jax.tree.map(jnp.ones_like, state.mask), u))


def straight_through(params, roles, density: float, begin: int, end: int, every: int, steps: int,
                     distribution: str = "uniform", sparsity_type: str = "unstructured",
                     role_rates=None) -> StraightThrough:
  """Straight-through pruning of one network (`params`: arrays or shapes) to `density`; checks first."""
  kind = structure.parse(sparsity_type)
  if kind.kind == "n:m":
    if not 0 <= begin < steps or not 1 <= every <= steps:
      raise PruningError(f"straight-through {kind}: needs 0 <= prune.update_begin < train.steps "
                         f"and 1 <= ΔT <= train.steps; got begin={begin}, ΔT={every}, steps={steps}")
    # Training starts dense (theta_0 whole); from begin=0 the first mask comes after one step.
    at = np.union1d([max(begin, 1)], np.arange(begin, steps + 1, every)[1 if begin == 0 else 0:])
    sparsity, settled = np.full(at.shape, 1.0 - kind.n / kind.m), max(begin, 1)
  else:
    schedule = schedules.Polynomial(0.0, 1.0 - density, begin, end, every).check(steps)
    at = np.union1d(schedule.update_steps(), np.arange(end, steps + 1, every))
    sparsity, settled = schedule.sparsity(at), end
    at, sparsity = at[at > 0], sparsity[at > 0]  # step 0 is dense: the mask training starts with
  rows, chain = gradual.keep_table(params, roles, sparsity, kind, distribution, role_rates)
  return StraightThrough(tuple(int(t) for t in at), rows, str(kind), settled_at=int(settled), chain=chain)


# ---------------------------------------------------------------- as a lottery mode
def round_updates(setup, round_index: int) -> StraightThrough:
  """Round r's straight-through pruning to `prune.densities[r-1]`."""
  cfg = setup.cfg
  shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
  return straight_through(shapes, setup.roles, cfg.prune.densities[round_index - 1], cfg.prune.update_begin,
                          cfg.prune.update_end, cfg.prune.update_every, cfg.train.steps, cfg.prune.distribution,
                          cfg.prune.sparsity_type, wiring.role_rates(cfg))


def check(setup) -> None:
  """N:M has one density: each of `prune.densities` must be N/M (one line otherwise)."""
  cfg = setup.cfg
  kind = structure.parse(cfg.prune.sparsity_type)
  if kind.kind == "n:m" and any(abs(d - kind.n / kind.m) > 1e-6 for d in cfg.prune.densities):
    raise PruningError(f"{kind} sparsity keeps {kind.n / kind.m:g} of the weights; prune.densities "
                       f"{tuple(cfg.prune.densities)} asks for other densities (set ({kind.n / kind.m:g},))")


@modes.register("ste", trains=round_updates, defaults={"distribution": "uniform", "update_every": 1},
                structures=("units", "block", "n:m"), check=check)
def find(request: modes.Request) -> modes.Found:
  """Straight-through: dense weights trained through a magnitude mask chosen again every ΔT."""
  return gradual.find(request)  # each round starts theta_0 dense, as GMP's
