"""Boolean mask pytrees with the params' structure.

Every parameter leaf gets a mask leaf; leaves of role `fixed` (biases, norm scales) keep an
all-True mask forever, so applying a mask is one `where` per leaf and no leaf is special-cased
downstream. Which leaves count as prunable comes from a `roles` pytree (see `ltjax.models`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.core.roles import FIXED, PRUNABLE

PyTree = Any


class MaskError(ValueError):
  """A mask that does not fit its params (structure, shape or dtype)."""


def path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def ones(params: PyTree) -> PyTree:
  """The dense mask: True everywhere."""
  return jax.tree.map(lambda p: jnp.ones(p.shape, jnp.bool_), params)


def apply(params: PyTree, mask: PyTree) -> PyTree:
  """Zero the pruned weights (exactly +0.0, whatever their sign)."""
  return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, mask)


def check(params: PyTree, mask: PyTree, roles: PyTree | None = None) -> None:
  """Raise MaskError unless `mask` has params' structure, shapes and a bool dtype (and fixed leaves are dense).

  Works on concrete arrays and on abstract shapes alike; leading ticket axes are allowed as long as
  params and mask agree on them.
  """
  p_def, m_def = jax.tree.structure(params), jax.tree.structure(mask)
  if p_def != m_def:
    raise MaskError(f"mask structure does not match params: mask {m_def} vs params {p_def}")
  flat_p = jax.tree_util.tree_flatten_with_path(params)[0]
  flat_m = jax.tree.leaves(mask)
  flat_k = jax.tree.leaves(roles) if roles is not None else [None] * len(flat_m)
  for (path, p), m, role in zip(flat_p, flat_m, flat_k):
    name = path_str(path)
    if tuple(m.shape) != tuple(p.shape):
      raise MaskError(f"mask leaf {name} has shape {tuple(m.shape)}, params have {tuple(p.shape)}")
    if m.dtype != jnp.bool_:
      raise MaskError(f"mask leaf {name} has dtype {m.dtype}, expected bool")
    if role == FIXED and isinstance(m, (np.ndarray, jax.Array)) and not isinstance(
        m, jax.core.Tracer) and not bool(np.all(np.asarray(m))):
      raise MaskError(f"mask leaf {name} prunes a non-prunable ({FIXED}) leaf")


def _prunable_leaves(tree: PyTree, roles: PyTree) -> list[tuple[str, Any, str]]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [(path_str(path), leaf, role) for (path, leaf), role in zip(flat, jax.tree.leaves(roles))
          if role in PRUNABLE]


def count(mask: PyTree, roles: PyTree) -> jax.Array:
  """Surviving prunable weights (int32)."""
  return sum((jnp.sum(m, dtype=jnp.int32) for _, m, _ in _prunable_leaves(mask, roles)),
             jnp.int32(0))


def size(tree: PyTree, roles: PyTree) -> int:
  """Total prunable weights (a Python int: it depends on shapes only)."""
  return sum(int(np.prod(leaf.shape)) for _, leaf, _ in _prunable_leaves(tree, roles))


def density(mask: PyTree, roles: PyTree) -> jax.Array:
  """Fraction of prunable weights that survive."""
  return count(mask, roles) / size(mask, roles)


def layer_density(mask: PyTree, roles: PyTree) -> dict[str, jax.Array]:
  """Fraction surviving per prunable leaf, keyed by path."""
  return {name: jnp.mean(m.astype(jnp.float32)) for name, m, _ in _prunable_leaves(mask, roles)}


def stacked_densities(masks: PyTree, roles: PyTree) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """`density` and `layer_density` of stacked masks ([K] each), computed on the host: a round's
  summary needs no program of its own. Counts are exact; fractions are float32 as on device."""
  leaves = [(name, np.asarray(m).reshape(np.shape(m)[0], -1))
            for name, m, _ in _prunable_leaves(masks, roles)]
  counts = {name: np.count_nonzero(m, axis=1) for name, m in leaves}
  total = sum(m.shape[1] for _, m in leaves)
  density = sum(counts.values()).astype(np.float32) / np.float32(total)
  layers = {name: counts[name].astype(np.float32) / np.float32(m.shape[1]) for name, m in leaves}
  return density, layers


def sizes_by_role(tree: PyTree, roles: PyTree) -> dict[str, int]:
  """Total prunable weights per layer role, e.g. {'fc': 265200, 'output': 1000}."""
  out: dict[str, int] = {}
  for _, leaf, role in _prunable_leaves(tree, roles):
    out[role] = out.get(role, 0) + int(np.prod(leaf.shape))
  return out


# ---------------------------------------------------------------- a workdir's masks/round_XX.npz
def pack_masks(masks, rows) -> dict[str, np.ndarray]:
  """Stacked masks -> masks/round_XX.npz contents: rows `rows`, bit-packed, plus each leaf's shape."""
  out = {}
  for path, m in jax.tree_util.tree_flatten_with_path(masks)[0]:
    name = path_str(path)
    out[name] = np.packbits(np.asarray(m)[rows], axis=-1)
    out[f"shape:{name}"] = np.asarray(m.shape[1:])
  return out


def unpack_masks(arrays) -> dict[str, np.ndarray]:
  """masks/round_XX.npz contents -> {leaf path: bool [rows, ...]} (the inverse of `pack_masks`)."""
  out = {}
  for key, packed in arrays.items():
    if key.startswith("shape:"):
      continue
    shape = np.asarray(arrays[f"shape:{key}"])
    if shape.size == 0:
      continue  # a scalar leaf was packed along trials; never prunable
    out[key] = np.unpackbits(packed, axis=-1, count=int(shape[-1])).astype(bool)
  return out
