"""Linear mode connectivity (Frankle et al. 2020): is a network stable to SGD noise?

Two copies of one network state (dense, or a ticket rewound to step k) train with different data
orders; the test error along the straight line between their final weights shows whether they
ended in one linearly connected minimum. The *instability* is the error barrier on that path:
max error minus the mean of the two end points' errors. Stable (barrier ~0) from some step k on
is what makes rewinding to k work where resetting to step 0 fails.

In a lottery run the second copy is the `twin` control (`ltjax.core.tickets`): it starts exactly as
its trial's ticket and differs only in its data order, so both train in the round's one program;
`stability.twins` > 1 draws more data orders. `twin_reinit` and `twin_random_mask` do the same for
those controls. The path's points are evaluated here as stacked tickets, again one program.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import lineup
from ltjax.core import tickets
from ltjax.core.interpolation import alphas, barrier, interpolate  # noqa: F401 -- this topic's names
from ltjax.engine import parallel

PyTree = Any


def path_errors(trainer, params_a: PyTree, params_b: PyTree, mask: PyTree, model_state_a: PyTree,
                model_state_b: PyTree, dataset, split, points: int) -> np.ndarray:
  """Test error (fraction) at `points` points between each pair's networks: [pairs, points].

  The arguments are stacked over pairs; both networks of a pair share its mask (pruned weights
  are 0 in both, so every point on the path keeps the mask). Non-trained state (batch statistics)
  is interpolated like the weights. All pairs' points are evaluated together.
  """
  params, masks, model_state = _path_points(params_a, params_b, mask, model_state_a, model_state_b,
                                            alphas(points))
  _, accuracy = trainer.evaluate_many(params, masks, model_state, dataset, split)
  return 1.0 - np.asarray(accuracy, np.float64).reshape(-1, points)


@jax.jit
def _path_points(params_a, params_b, mask, model_state_a, model_state_b, weights):
  """Every pair's points, flattened to [pairs * points] tickets (one program, not one per leaf)."""
  points = weights.shape[0]

  def path(x, y):  # [pairs, ...] -> [pairs * points, ...], per leaf (a tree may have none)
    return jax.vmap(lambda a, b: interpolate(a, b, weights))(x, y).reshape((-1,) + x.shape[1:])

  return (jax.tree.map(path, params_a, params_b),
          jax.tree.map(lambda m: jnp.repeat(m, points, axis=0), mask),
          jax.tree.map(path, model_state_a, model_state_b))


# ---------------------------------------------------------------- twins in a lottery round
def fork_twins(states, ids: Sequence[lineup.TicketId], lineages: np.ndarray | None = None):
  """Each twin (of the lineages where `lineages` [trials] is True, default all) takes its
  trial's ticket's weights and optimizer state; it keeps its data order."""
  twins = [i for i in lineup.rows(ids, tickets.TWIN) if lineages is None or lineages[ids[i].trial]]
  if not twins:
    return states
  source = np.arange(len(ids))
  source[twins] = [lineup.rows(ids, tickets.TICKET)[ids[i].trial] for i in twins]
  forked = parallel.take(states, jnp.asarray(source))
  return forked.replace(rng=states.rng)


def twin_paths(trainer, points: int, ids: Sequence[lineup.TicketId], states, dataset) -> np.ndarray:
  """[K, points] test error along the line from each twin's partner (its trial's ticket, first
  reinit draw or random mask) to the twin, on the twin's row and, for a first twin, also on the
  partner's row; NaN elsewhere. All pairs' points are evaluated as one program."""
  out = np.full((len(ids), points), np.nan)
  twins = [j for j, tid in enumerate(ids) if tid.kind in tickets.TWINS]
  if not twins:
    return out
  where = {(tid.kind, tid.trial, tid.draw): i for i, tid in enumerate(ids)}
  partners = np.array([where[(tickets.TWINS[ids[j].kind], ids[j].trial, 0)] for j in twins])
  errors = path_errors(
      trainer, parallel.take(states.params, partners), parallel.take(states.params, twins),
      parallel.take(states.mask, twins), parallel.take(states.model_state, partners),
      parallel.take(states.model_state, twins), dataset, dataset.test, points)
  for j, p, e in zip(twins, partners, errors):
    out[j] = e
    if ids[j].draw == 0:
      out[p] = e
  return out
