"""Straight lines between two networks, and the error barrier along them (Frankle et al. 2020's
linear mode connectivity; `ltjax.stability` evaluates the points of a lottery round's twins)."""

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
