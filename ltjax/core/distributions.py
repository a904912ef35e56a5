"""How a network's target density is spread over its prunable layers: one density per leaf.

The *distribution* is one of the four independent choices of a sparse network (with the
algorithm that picks the weights, the schedule that says when, and the structure of what goes):

- `uniform`: every prunable layer at the target density (Zhu & Gupta 2017; jaxpruner's default).
- `er`: Erdős–Rényi (Mocanu et al. 2018): density proportional to (fan_in + fan_out) /
  (fan_in * fan_out), so small layers stay denser.
- `erk`: Erdős–Rényi-Kernel (Evci et al. 2020, RigL): the same with the kernel's spatial size,
  sum(shape) / prod(shape).
- `per_role`: IMP's ratios between layer roles (the paper's p_fc, p_conv, p_output), scaled to
  the target (`pruning.one_shot_rates`).

ER and ERK scale one epsilon so the network keeps exactly `density` of its prunable weights; a
layer whose share would exceed 1 is kept dense and epsilon is solved again over the rest (the
loop of RigL's `get_sparsities`, which jaxpruner copies). Densities are floats per leaf (1.0 for
fixed leaves); `keep_counts` turns them into exact integer counts.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import numpy as np

from ltjax.core import masks as masks_lib
from ltjax.core.pruning import PruningError, one_shot_rates
from ltjax.core.roles import FIXED, PRUNABLE

PyTree = Any
DISTRIBUTIONS = ("uniform", "er", "erk", "per_role")


def _raw_weight(shape: tuple[int, ...], kernel: bool) -> float:
  """ER's fan_in + fan_out over fan_in * fan_out; ERK counts every axis of the kernel."""
  dims = shape if kernel else (int(np.prod(shape[:-1])), shape[-1])
  return sum(dims) / float(np.prod(dims))


def layer_densities(params: PyTree, roles: PyTree, density: float, distribution: str = "erk",
                    role_rates: Mapping[str, float] | None = None, dense: tuple[str, ...] = ()
                    ) -> PyTree:
  """Per-leaf densities (params' structure; 1.0 for fixed leaves) that keep `density` of all
  prunable weights. `params` may be arrays or shapes (`jax.eval_shape`); `dense` names leaf
  paths (as `masks.path_str` writes them) kept dense; `role_rates` are `per_role`'s ratios."""
  if distribution not in DISTRIBUTIONS:
    raise PruningError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
  if not (isinstance(density, (int, float)) and not isinstance(density, bool)
          and math.isfinite(density) and 0.0 < density <= 1.0):
    raise PruningError(f"density must be in (0, 1], got {density!r}")
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  kinds = jax.tree.leaves(roles)
  names = [masks_lib.path_str(path) for path, _ in flat]
  unknown = sorted(set(dense) - set(names))
  if unknown:
    raise PruningError(f"dense layers {unknown} are not leaves of the network")
  shapes = [tuple(int(d) for d in leaf.shape) for _, leaf in flat]
  pruned = [k in PRUNABLE and n not in dense for k, n in zip(kinds, names)]
  if not any(pruned):
    raise PruningError(f"distribution {distribution!r}: the network has no prunable layer to spread "
                       "a density over")
  sizes = np.array([int(np.prod(s)) for s in shapes], np.float64)
  total = sum(sizes[i] for i, k in enumerate(kinds) if k in PRUNABLE)
  kept_dense = sum(sizes[i] for i, (k, n) in enumerate(zip(kinds, names)) if k in PRUNABLE and n in dense)
  if density * total < kept_dense:
    raise PruningError(f"density {density:g} is below the {kept_dense / total:.4f} of weights in "
                       "the layers kept dense")
  out = [1.0] * len(shapes)
  if distribution == "uniform":
    share = (density * total - kept_dense) / sum(sizes[i] for i, p in enumerate(pruned) if p)
    out = [share if p else 1.0 for p in pruned]
  elif distribution == "per_role":
    if not role_rates:
      raise PruningError("distribution 'per_role' needs the roles' pruning rates")
    by_role = masks_lib.sizes_by_role(params, roles)
    rates = one_shot_rates(role_rates, by_role, density)
    out = [1.0 - rates.get(k, 0.0) if k in PRUNABLE else 1.0 for k in kinds]
  else:
    raw = [_raw_weight(s, distribution == "erk") if p else 0.0 for s, p in zip(shapes, pruned)]
    free = list(pruned)
    while True:  # layers that would exceed density 1 are made dense, then epsilon is solved again
      keep = density * total - sum(sizes[i] for i, k in enumerate(kinds) if k in PRUNABLE and not free[i])
      eps = keep / sum(raw[i] * sizes[i] for i in range(len(raw)) if free[i])
      over = [i for i in range(len(raw)) if free[i] and raw[i] * eps > 1.0]
      if not over:
        break
      for i in over:
        free[i] = False
    out = [raw[i] * eps if free[i] else 1.0 for i in range(len(raw))]
  out = [1.0 if k == FIXED else float(d) for d, k in zip(out, kinds)]
  return jax.tree.unflatten(jax.tree.structure(params), out)


def keep_counts(params: PyTree, densities: PyTree) -> PyTree:
  """Exact weights kept per leaf: round(density * size) (half to even), at least 1 where the
  density is above 0, never more than the leaf holds."""
  def count(leaf, d):
    n = int(np.prod(leaf.shape))
    return min(n, max(1 if d > 0 else 0, round(d * n)))
  return jax.tree.map(count, params, densities)


def network_density(params: PyTree, roles: PyTree, counts: PyTree) -> float:
  """The fraction of prunable weights that `counts` keep."""
  pairs = [(c, int(np.prod(leaf.shape))) for c, leaf, k in
           zip(jax.tree.leaves(counts), jax.tree.leaves(params), jax.tree.leaves(roles)) if k in PRUNABLE]
  return sum(c for c, _ in pairs) / sum(n for _, n in pairs)
