"""Linear mode connectivity (Frankle et al. 2020): is a network stable to SGD noise?

Two copies of one network state (dense, or a ticket rewound to step k) train with different data
orders; the test error along the straight line between their final weights shows whether they
ended in one linearly connected minimum. The *instability* is the error barrier on that path:
max error minus the mean of the two end points' errors. Stable (barrier ~0) from some step k on
is what makes rewinding to k work where resetting to step 0 fails.

In a lottery run the second copy is the `twin` control (`ltjax.core.tickets`): it starts exactly as
its trial's ticket and differs only in its data order, so both train in the round's one program.
The path's points are evaluated here as stacked tickets, again one program.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def alphas(points: int) -> np.ndarray:
  """`points` evenly spaced interpolation weights from 0 (the first network) to 1 (the second)."""
  if points < 2:
    raise ValueError(f"interpolation needs at least 2 points (the two ends), got {points}")
  return np.linspace(0.0, 1.0, points)


def interpolate(a: PyTree, b: PyTree, weights) -> PyTree:
  """(1 - w) * a + w * b for each weight w, stacked on a new leading axis."""
  w = jnp.asarray(weights, jnp.float32)
  return jax.tree.map(
      lambda x, y: ((1 - w).reshape((-1,) + (1,) * x.ndim) * x[None]
                    + w.reshape((-1,) + (1,) * y.ndim) * y[None]).astype(x.dtype), a, b)


def barrier(errors) -> np.ndarray:
  """Instability of each path (last axis: the points): max error minus the ends' mean error."""
  e = np.asarray(errors, np.float64)
  return e.max(axis=-1) - 0.5 * (e[..., 0] + e[..., -1])


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
