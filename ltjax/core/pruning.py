"""Scores -> masks. One round at rate p removes exactly round(p * alive) weights.

The count is computed on the host in exact integer arithmetic (Python's round-half-to-even), then
handed to a jitted selection that sorts (alive first, score ascending, index ascending) so ties
break deterministically and pruned weights stay pruned. The selection vmaps over a ticket axis.

Two ways to say how many weights go, one selection: `prune_counts` (a rate per layer role, IMP's
rounds) and `density_counts` (a target density, in one step or several, for one-shot and at-init
methods). Scores come from `ltjax.core.scores`' registry.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.core import masks as masks_lib
from ltjax.core import scores as scores_lib
from ltjax.core.roles import FIXED, PRUNABLE

PyTree = Any
LAYERWISE, GLOBAL = "layerwise", "global"


class PruningError(ValueError):
  """Invalid pruning request (bad rate or scope, a layer that would be emptied, unknown score)."""


# ---------------------------------------------------------------- rates
def rates_tree(roles: PyTree, rates: Mapping[str, float]) -> PyTree:
  """Per-leaf pruning rates from per-role rates, e.g. {'conv': .1, 'fc': .2, 'output': .1}.

  Kinds missing from `rates` get rate 0 (not pruned); fixed leaves always get 0.
  """
  unknown = set(rates) - set(PRUNABLE)
  if unknown:
    raise PruningError(f"rates for unknown layer roles {sorted(unknown)}; roles: {PRUNABLE}")
  for role, rate in rates.items():
    validate_rate(rate, role)
  return jax.tree.map(lambda k: 0.0 if k == FIXED else float(rates.get(k, 0.0)), roles)


def validate_rate(rate: float, what: str = "rate") -> None:
  if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0.0 <= rate < 1.0):
    raise PruningError(f"pruning rate for {what} must be in [0, 1), got {rate!r}")


def rates_for_rounds(rates: Mapping[str, float], rounds: float) -> dict[str, float]:
  """Per-role rates that prune in one step what `rounds` iterative rounds would (1 - (1-p)^n)."""
  return {k: 1.0 - (1.0 - p) ** rounds for k, p in rates.items()}


def one_shot_rates(rates: Mapping[str, float], sizes_by_role: Mapping[str, int],
                   target_density: float) -> dict[str, float]:
  """Per-role rates that reach `target_density` of all prunable weights in one step.

  Keeps the paper's ratios between roles by finding the (fractional) number of rounds n with
  sum_k size_k (1 - p_k)^n = target * total, i.e. one-shot pruning at p^(1/n) in the paper's terms.
  Kinds with rate 0 stay dense, so a target below their share is unreachable (error).
  """
  if not 0.0 < target_density <= 1.0:
    raise PruningError(f"target density must be in (0, 1], got {target_density!r}")
  total = sum(sizes_by_role.values())
  fixed = sum(s for k, s in sizes_by_role.items() if rates.get(k, 0.0) == 0.0)
  if target_density * total < fixed:
    raise PruningError(f"target density {target_density:.4f} is below the {fixed / total:.4f} of "
                       "weights in layers whose rate is 0")

  def dens(n):
    return sum(s * (1.0 - rates.get(k, 0.0)) ** n for k, s in sizes_by_role.items()) / total

  lo, hi = 0.0, 1.0
  while dens(hi) > target_density and hi < 1e6:
    hi *= 2
  for _ in range(200):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if dens(mid) > target_density else (lo, mid)
  return rates_for_rounds(rates, hi)


# ---------------------------------------------------------------- counts (host, exact)
def exact_round(rate: float, alive: np.ndarray) -> np.ndarray:
  """round(rate * alive) in exact rational arithmetic, half to even, elementwise."""
  frac = fractions.Fraction(rate).limit_denominator(10**9)  # 0.2 means 1/5, not 0.2000000000000000111
  return np.vectorize(lambda n: round(frac * int(n)), otypes=[np.int64])(alive)


def _alive(mask_leaf, ticket_axes: int) -> np.ndarray:
  m = np.asarray(mask_leaf)
  return m.reshape(m.shape[:ticket_axes] + (-1,)).sum(axis=-1)


def prune_counts(mask: PyTree, roles: PyTree, rates: PyTree, scope: str = LAYERWISE,
                 ticket_axes: int = 0) -> PyTree:
  """How many weights each leaf (layerwise) or the pool of leaves (global) loses this round.

  `mask` may carry `ticket_axes` leading axes; counts are then per ticket. Layerwise returns a
  pytree of int arrays like `mask`'s structure (0 for fixed leaves); global returns one int array.
  Raises PruningError for a bad rate or if any pruned layer (or the pool) would be emptied.
  """
  paths_masks = jax.tree_util.tree_flatten_with_path(mask)[0]
  treedef = jax.tree.structure(mask)
  leaves_k, leaves_r = jax.tree.leaves(roles), jax.tree.leaves(rates)
  for r, k in zip(leaves_r, leaves_k):
    validate_rate(r, k)
  alive = [_alive(m, ticket_axes) for _, m in paths_masks]
  if scope == LAYERWISE:
    counts = []
    for (path, _), a, r in zip(paths_masks, alive, leaves_r):
      c = exact_round(r, a)
      if r > 0 and np.any((a > 0) & (a - c <= 0)):
        raise PruningError(f"pruning {masks_lib.path_str(path)} at rate {r:g} would leave it "
                           "with no weights")
      counts.append(c)
    return jax.tree.unflatten(treedef, counts)
  if scope == GLOBAL:
    pooled = sorted({r for r in leaves_r if r > 0})
    if len(pooled) > 1:
      raise PruningError(f"global pruning needs one rate for every pruned layer, got {pooled}")
    pool = sum((a for a, r in zip(alive, leaves_r) if r > 0), np.zeros_like(alive[0]))
    c = exact_round(pooled[0] if pooled else 0.0, pool)
    if pooled and np.any((pool > 0) & (pool - c <= 0)):
      raise PruningError(f"global pruning at rate {pooled[0]:g} would leave no weights")
    return c
  raise PruningError(f"unknown pruning scope {scope!r}; use {LAYERWISE!r} or {GLOBAL!r}")


# ---------------------------------------------------------------- selection (jitted, vmappable)
def drop_lowest(scores: jax.Array, alive: jax.Array, k) -> jax.Array:
  """Flat vectors -> new alive vector with the k lowest-scoring alive entries removed.

  Order: score ascending, then index ascending (deterministic ties); dead entries stay dead.
  Selection, not sorting: a 32-step bisection finds the k-th lowest score's order-preserving
  integer key, so the cost is 32 linear passes (a sort was ~20x slower on CPU and dominated
  SynFlow's 100 rounds). `tests/test_pruning.py` checks it against a lexsort reference.
  """
  key = _order_key(scores)
  k = jnp.asarray(k, jnp.int32)

  def narrow(_, bounds):  # the smallest t with #(alive & key <= t) >= k lies in [lo, hi]
    lo, hi = bounds
    mid = lo + (hi - lo) // 2
    enough = jnp.sum(alive & (key <= mid), dtype=jnp.int32) >= k
    return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

  _, t = jax.lax.fori_loop(0, 32, narrow, (jnp.uint32(0), jnp.uint32(0xFFFFFFFF)))
  below = alive & (key < t)
  tied = alive & (key == t)
  take_tied = tied & (jnp.cumsum(tied, dtype=jnp.int32) <= k - jnp.sum(below, dtype=jnp.int32))
  return alive & ~below & ~take_tied


def _order_key(scores: jax.Array) -> jax.Array:
  """float -> uint32 with the same order (-0 == +0; NaN counts as +inf, so it is kept longest)."""
  s = scores.astype(jnp.float32)
  s = jnp.where(jnp.isnan(s), jnp.inf, jnp.where(s == 0, 0.0, s))
  bits = jax.lax.bitcast_convert_type(s, jnp.uint32)
  return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(0x80000000))


def select(scores: PyTree, mask: PyTree, counts, pooled: tuple[bool, ...], scope: str) -> PyTree:
  """The one selection (traceable): drop the `counts` lowest-scoring alive weights of each pooled
  leaf (layerwise: counts[i] for leaf i) or of all pooled leaves together (global: counts[0])."""
  s_leaves, m_leaves = jax.tree.leaves(scores), jax.tree.leaves(mask)
  if scope == LAYERWISE:
    out = [drop_lowest(s.ravel(), m.ravel(), counts[i]).reshape(m.shape) if p else m
           for i, (s, m, p) in enumerate(zip(s_leaves, m_leaves, pooled))]
    return jax.tree.unflatten(jax.tree.structure(mask), out)
  idx = [i for i, p in enumerate(pooled) if p]
  flat = drop_lowest(jnp.concatenate([s_leaves[i].ravel() for i in idx]),
                     jnp.concatenate([m_leaves[i].ravel() for i in idx]), counts[0])
  out, offset = list(m_leaves), 0
  for i in idx:
    n = m_leaves[i].size
    out[i] = flat[offset:offset + n].reshape(m_leaves[i].shape)
    offset += n
  return jax.tree.unflatten(jax.tree.structure(mask), out)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _select(scores, mask, counts, pooled, scope):
  return select(scores, mask, counts, pooled, scope)


def prune(scores: PyTree, mask: PyTree, roles: PyTree, rates: PyTree, scope: str = LAYERWISE,
          ticket_axes: int = 0) -> PyTree:
  """One pruning round: drop round(rate * alive) lowest-scoring alive weights per leaf or pool.

  `scores` and `mask` may be stacked on `ticket_axes` (0 or 1) leading axes; each ticket is pruned
  independently. Fixed leaves and rate-0 leaves keep their mask.
  """
  if ticket_axes not in (0, 1):
    raise PruningError(f"ticket_axes must be 0 or 1, got {ticket_axes}")
  counts = prune_counts(mask, roles, rates, scope, ticket_axes)
  if scope == LAYERWISE:
    pooled = tuple(True for _ in jax.tree.leaves(rates))  # rate 0: a count of 0 drops nothing
    counts = jnp.stack([jnp.asarray(c) for c in jax.tree.leaves(counts)], axis=-1)
  else:
    pooled = tuple(r > 0 for r in jax.tree.leaves(rates))
    if not any(pooled):
      return mask
    counts = jnp.asarray(counts)[..., None]
  select_fn = functools.partial(_select, pooled=pooled, scope=scope)
  return (jax.vmap(select_fn) if ticket_axes else select_fn)(scores, mask, counts)


def prune_round(trained: PyTree, init: PyTree, mask: PyTree, roles: PyTree, rates: PyTree,
                scope: str = LAYERWISE, score: str = "magnitude", key: jax.Array | None = None,
                ticket_axes: int = 0, invert: bool = False, net: scores_lib.Network | None = None
                ) -> PyTree:
  """Score with a registered score, then `prune`: the one-liner of an IMP round. `invert` drops
  the highest scores instead (Frankle et al. 2021's inverted-score check); `net` is what a
  network-aware score sees (one ticket at a time: `ticket_axes` 0)."""
  try:
    entry = scores_lib.get(score)
  except scores_lib.ScoreError as e:
    raise PruningError(str(e)) from None
  if entry.needs_network and (net is None or ticket_axes):
    raise PruningError(f"score {score!r} needs the network: give `net` and one ticket at a time")
  scores = score_trees(trained, init, mask, entry, key, ticket_axes, invert, net)
  return prune(scores, mask, roles, rates, scope, ticket_axes)


def score_trees(trained: PyTree, init: PyTree, mask: PyTree, entry: scores_lib.Score,
                key: jax.Array | None = None, ticket_axes: int = 0, invert: bool = False,
                net: scores_lib.Network | None = None) -> PyTree:
  """Every weight's score under a registered score `entry` (stacked on `ticket_axes` 0 or 1)."""
  key = jax.random.key(0) if key is None else key
  if ticket_axes:
    n = jax.tree.leaves(mask)[0].shape[0]
    keys = key if jnp.ndim(key) == 1 else jax.random.split(key, n)
    return _scores(entry.fn, True, invert, trained, init, mask, keys)
  return _net_scores(entry.fn, net, invert, trained, init, mask, key, *_batch(net))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _scores(score_fn, stacked: bool, invert: bool, trained, init, mask, key):
  """A score as one program (eagerly, each of its ops compiled once per leaf shape)."""
  fn = lambda t, i, m, k: score_fn(t, m, k, scores_lib.Context(init=i))  # noqa: E731
  out = (jax.vmap(fn) if stacked else fn)(trained, init, mask, key)
  return jax.tree.map(jnp.negative, out) if invert else out


def _batch(net):
  return (None, None) if net is None else (net.images, net.labels)


def _net_scores(score_fn, net, invert, trained, init, mask, key, images, labels):
  if net is None:
    return _scores(score_fn, False, invert, trained, init, mask, key)
  static = scores_lib.Network(net.apply, net.loss, tuple(net.input_shape))
  return _scores_with_net(score_fn, static, invert, trained, init, mask, key, images, labels)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _scores_with_net(score_fn, net, invert, trained, init, mask, key, images, labels):
  net = dataclasses.replace(net, images=images, labels=labels)
  out = score_fn(trained, mask, key, scores_lib.Context(init=init, net=net))
  return jax.tree.map(jnp.negative, out) if invert else out


# ---------------------------------------------------------------- to a density (host, exact)
def density_counts(mask: PyTree, roles: PyTree, density: float, scope: str, n: int = 1) -> np.ndarray:
  """Weights to remove in each of n steps that take every prunable layer (layerwise: [n, leaves])
  or all of them together (global: [n, 1]) to density^(k/n) of its size, exactly. Raises
  PruningError if a density would leave a layer (or the pool) empty."""
  if not (isinstance(density, (int, float)) and 0.0 < density <= 1.0):
    raise PruningError(f"density must be in (0, 1], got {density!r}")
  if scope not in (LAYERWISE, GLOBAL):
    raise PruningError(f"unknown pruning scope {scope!r}; use {LAYERWISE!r} or {GLOBAL!r}")
  leaves = jax.tree.leaves(mask)
  prunable = [k in PRUNABLE for k in jax.tree.leaves(roles)]
  alive = np.array([int(np.asarray(m).sum()) for m in leaves])
  sizes = np.array([m.size for m in leaves])
  out = np.zeros((n, len(leaves) if scope == LAYERWISE else 1), np.int32)
  for i in range(1, n + 1):
    d = density ** (i / n)
    if scope == GLOBAL:
      pool, keep = alive[prunable].sum(), round(d * sizes[prunable].sum())
      if not 0 < keep <= pool:
        raise PruningError(f"density {density:g} is not reachable from {pool} of "
                           f"{sizes[prunable].sum()} weights")
      out[i - 1, 0] = pool - keep
      alive = alive.copy()
      alive[np.flatnonzero(prunable)[0]] -= pool - keep  # only the pool's total matters
      continue
    for j, (a, size, p) in enumerate(zip(alive, sizes, prunable)):
      keep = round(d * size)
      if p and not 0 < keep <= a:
        raise PruningError(f"density {density:g} is not reachable in a layer of {size} weights "
                           f"with {a} alive (it would keep {keep})")
      out[i - 1, j] = a - keep if p else 0
    alive = alive - out[i - 1]
  return out
