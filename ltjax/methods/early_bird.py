"""Early-bird tickets (You et al. 2020): draw the mask during dense training once it stops moving.

Every `every` steps the mask that magnitude pruning would draw at the target density is computed
from the current weights; when its Hamming distance to the previous one (the fraction of
prunable entries that differ) has stayed below `threshold` for `patience` checks in a row, that
mask is the ticket and dense training can stop. Each stacked ticket (trial) settles on its own;
training continues until all have, or `max_steps`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import lineup
from ltjax.core import masks, pruning, tickets
from ltjax.core.roles import PRUNABLE
from ltjax.data import Dataset
from ltjax.engine import programs
from ltjax.methods import modes, oneshot

PyTree = Any


@dataclasses.dataclass
class Draw:
  """Per ticket: the step its mask was drawn at (-1: never settled) and the mask (stacked)."""
  step: np.ndarray          # [K]
  mask: PyTree              # [K, ...]: the settled mask, or the last one drawn if it never settled
  distances: np.ndarray     # [checks, K]: Hamming distance of each check's mask to the previous
  steps_trained: int        # dense steps actually trained (the same for all tickets)
  max_steps: int

  @property
  def steps_saved(self) -> np.ndarray:
    """Dense training steps each ticket did not need, against training to `max_steps`."""
    return np.where(self.step >= 0, self.max_steps - self.step, 0)


def mask_distance(a: PyTree, b: PyTree, roles: PyTree) -> jax.Array:
  """Fraction of prunable entries where two (stacked [K, ...]) masks differ: [K]."""
  pairs = [(x, y) for x, y, k in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(roles))
           if k in PRUNABLE]
  differ = sum(jnp.sum((x != y).reshape(x.shape[0], -1), axis=1) for x, y in pairs)
  total = sum(int(np.prod(x.shape[1:])) for x, _ in pairs)
  return differ / total


def find(trainer, states, dataset: Dataset, roles: PyTree, rates: PyTree, every: int,
         max_steps: int, threshold: float = 0.1, patience: int = 5,
         scope: str = pruning.LAYERWISE) -> tuple[Draw, Any]:
  """Train the stacked dense `states` until every ticket's magnitude mask settles; returns the
  draw and the states where training stopped. `rates` prune the dense mask in one step to the
  target density (e.g. from `pruning.one_shot_rates`)."""
  if every < 1 or max_steps < every or patience < 1 or not 0 < threshold < 1:
    raise ValueError(f"need every >= 1, max_steps >= every, patience >= 1, 0 < threshold < 1; got "
                     f"every={every}, max_steps={max_steps}, patience={patience}, threshold={threshold}")
  ones = jax.tree.map(lambda m: jnp.ones_like(m, bool), states.mask)
  k = int(jax.tree.leaves(ones)[0].shape[0])
  # Laid out like any round (padded to the mesh, one group per device when unrolled); training
  # donates its input, so the caller's states are copied first.
  groups = trainer.place_groups(jax.tree.map(jnp.copy, states))
  dataset = trainer.layout.replicate(dataset)
  live = trainer.live(k)
  drawn_step = np.full(k, -1)
  drawn = None
  previous, distances, calm = None, [], np.zeros(k, int)
  step = 0
  while step < max_steps and (drawn_step < 0).any():
    n = min(every, max_steps - step)
    groups = [programs.train_steps(trainer, g, dataset, jnp.int32(step), n, live)[0] for g in groups]
    step += n
    params = trainer.gather_groups([g.params for g in groups], k)
    mask = pruning.prune_round(params, params, ones, roles, rates, scope, "magnitude", ticket_axes=1)
    if previous is not None:
      d = np.asarray(mask_distance(mask, previous, roles))
      distances.append(d)
      calm = np.where(d < threshold, calm + 1, 0)
      settle = (calm >= patience) & (drawn_step < 0)
      if settle.any():
        drawn_step = np.where(settle, step, drawn_step)
        pick = jnp.asarray(settle)
        drawn = mask if drawn is None else jax.tree.map(
            lambda new, old: jnp.where(pick.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
            mask, drawn)
    elif drawn is None:
      drawn = mask
    previous = mask
  # Tickets that never settled keep the last mask drawn (marked by step -1).
  unsettled = jnp.asarray(drawn_step < 0)
  drawn = jax.tree.map(lambda last, d: jnp.where(unsettled.reshape((-1,) + (1,) * (d.ndim - 1)), last, d),
                       previous, drawn)
  return (Draw(drawn_step, drawn, np.array(distances).reshape(-1, k), step, max_steps),
          trainer.gather_groups(groups, k))


@modes.register("early_bird")
def find_mode(request: modes.Request) -> modes.Found:
  """Early-bird: each trial's dense net trained again from theta_0 with round 0's data order
  until its magnitude mask at the round's density settles (checked every train.eval_every steps)."""
  setup, lineage, cfg = request.setup, request.lineage, request.setup.cfg
  ids = [lineup.TicketId(tickets.TICKET, t) for t in range(cfg.trials)]
  dense = lineage.replace(round=0, start_params=lineage.init_params,
                          start_model_state=lineage.init_model_state,
                          mask=jax.vmap(masks.ones)(lineage.init_params))
  rates = oneshot.one_shot_rates(setup, lineage, cfg.prune.densities[request.round_index])
  draw, _ = find(setup.trainer, lineup.start_states(setup, dense, ids), request.dataset,
                 setup.roles, rates, cfg.train.eval_every, cfg.train.steps,
                 cfg.prune.early_bird_threshold, cfg.prune.early_bird_patience, cfg.prune.scope)
  spent = np.where(draw.step >= 0, draw.step, draw.steps_trained)  # never settled: all it trained
  return modes.Found(draw.mask, jnp.asarray(spent, jnp.int32))
