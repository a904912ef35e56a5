"""Scores -> masks. One round at rate p removes exactly round(p * alive) weights.

The count is computed on the host in exact integer arithmetic (Python's round-half-to-even), then
handed to a jitted selection that sorts (alive first, score ascending, index ascending) so ties
break deterministically and pruned weights stay pruned. The selection vmaps over a ticket axis.

Scores are pluggable: a `ScoreFn(trained, init, key) -> pytree of float` per criterion, registered
by name (magnitude is the paper's; others drop in the same way).
"""

from __future__ import annotations

import fractions
import functools
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.core import masks as masks_lib
from ltjax.core.roles import FIXED, PRUNABLE_KINDS

PyTree = Any
ScoreFn = Callable[[PyTree, PyTree, jax.Array], PyTree]
LAYERWISE, GLOBAL = "layerwise", "global"


class PruningError(ValueError):
  """Invalid pruning request (bad rate, a layer that would be emptied, unknown score)."""


# ---------------------------------------------------------------- scores
_SCORES: dict[str, ScoreFn] = {}


def register_score(name: str, fn: ScoreFn) -> ScoreFn:
  _SCORES[name] = fn
  return fn


def score_names() -> list[str]:
  return sorted(_SCORES)


def get_score(name: str) -> ScoreFn:
  if name not in _SCORES:
    raise PruningError(f"unknown pruning score {name!r}; known: {', '.join(sorted(_SCORES))}")
  return _SCORES[name]


def magnitude(trained, init, key):
  """The paper's criterion: keep the largest |trained weight| (Zhou et al.'s `large_final`)."""
  del init, key
  return jax.tree.map(jnp.abs, trained)


def magnitude_increase(trained, init, key):
  """Zhou et al.'s `magnitude_increase`: |w_final| - |w_init|."""
  del key
  return jax.tree.map(lambda t, i: jnp.abs(t) - jnp.abs(i), trained, init)


def movement(trained, init, key):
  """|w_final - w_init|: how far training moved each weight."""
  del key
  return jax.tree.map(lambda t, i: jnp.abs(t - i), trained, init)


def random(trained, init, key):
  """Uniform random scores: random pruning at the same counts."""
  del init
  leaves, treedef = jax.tree.flatten(trained)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.uniform(k, x.shape) for k, x in zip(keys, leaves)])


def large_init(trained, init, key):
  """Zhou et al.'s `large_init`: keep the largest |w_init| (the training is ignored)."""
  del trained, key
  return jax.tree.map(jnp.abs, init)


def small_init(trained, init, key):
  """Zhou et al.'s `small_init`: keep the smallest |w_init| (a control: expected to be poor)."""
  del trained, key
  return jax.tree.map(lambda i: -jnp.abs(i), init)


def small_final(trained, init, key):
  """Zhou et al.'s `small_final`: keep the smallest |w_final| (a control: expected to be poor)."""
  del init, key
  return jax.tree.map(lambda t: -jnp.abs(t), trained)


def large_init_large_final(trained, init, key):
  """Zhou et al.'s `large_init_large_final`: large at both ends, min(|w_init|, |w_final|)."""
  del key
  return jax.tree.map(lambda t, i: jnp.minimum(jnp.abs(t), jnp.abs(i)), trained, init)


def small_init_small_final(trained, init, key):
  """Zhou et al.'s `small_init_small_final`: small at both ends, -max(|w_init|, |w_final|)."""
  del key
  return jax.tree.map(lambda t, i: -jnp.maximum(jnp.abs(t), jnp.abs(i)), trained, init)


for _name, _fn in [("magnitude", magnitude), ("large_final", magnitude),
                   ("magnitude_increase", magnitude_increase), ("movement", movement),
                   ("random", random), ("large_init", large_init), ("small_init", small_init),
                   ("small_final", small_final), ("large_init_large_final", large_init_large_final),
                   ("small_init_small_final", small_init_small_final)]:
  register_score(_name, _fn)


# ---------------------------------------------------------------- rates
def rates_tree(kinds: PyTree, rates: Mapping[str, float]) -> PyTree:
  """Per-leaf pruning rates from per-kind rates, e.g. {'conv': .1, 'fc': .2, 'output': .1}.

  Kinds missing from `rates` get rate 0 (not pruned); fixed leaves always get 0.
  """
  unknown = set(rates) - set(PRUNABLE_KINDS)
  if unknown:
    raise PruningError(f"rates for unknown layer kinds {sorted(unknown)}; kinds: {PRUNABLE_KINDS}")
  for kind, rate in rates.items():
    validate_rate(rate, kind)
  return jax.tree.map(lambda k: 0.0 if k == FIXED else float(rates.get(k, 0.0)), kinds)


def validate_rate(rate: float, what: str = "rate") -> None:
  if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0.0 <= rate < 1.0):
    raise PruningError(f"pruning rate for {what} must be in [0, 1), got {rate!r}")


def rates_for_rounds(rates: Mapping[str, float], rounds: float) -> dict[str, float]:
  """Per-kind rates that prune in one step what `rounds` iterative rounds would (1 - (1-p)^n)."""
  return {k: 1.0 - (1.0 - p) ** rounds for k, p in rates.items()}


def one_shot_rates(rates: Mapping[str, float], sizes_by_kind: Mapping[str, int],
                   target_density: float) -> dict[str, float]:
  """Per-kind rates that reach `target_density` of all prunable weights in one step.

  Keeps the paper's ratios between kinds by finding the (fractional) number of rounds n with
  sum_k size_k (1 - p_k)^n = target * total, i.e. one-shot pruning at p^(1/n) in the paper's terms.
  Kinds with rate 0 stay dense, so a target below their share is unreachable (error).
  """
  if not 0.0 < target_density <= 1.0:
    raise PruningError(f"target density must be in (0, 1], got {target_density!r}")
  total = sum(sizes_by_kind.values())
  fixed = sum(s for k, s in sizes_by_kind.items() if rates.get(k, 0.0) == 0.0)
  if target_density * total < fixed:
    raise PruningError(f"target density {target_density:.4f} is below the {fixed / total:.4f} of "
                       "weights in layers whose rate is 0")

  def dens(n):
    return sum(s * (1.0 - rates.get(k, 0.0)) ** n for k, s in sizes_by_kind.items()) / total

  lo, hi = 0.0, 1.0
  while dens(hi) > target_density and hi < 1e6:
    hi *= 2
  for _ in range(200):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if dens(mid) > target_density else (lo, mid)
  return rates_for_rounds(rates, hi)


# ---------------------------------------------------------------- counts (host, exact)
def _exact_round(rate: float, alive: np.ndarray) -> np.ndarray:
  """round(rate * alive) in exact rational arithmetic, half to even, elementwise."""
  frac = fractions.Fraction(rate).limit_denominator(10**9)  # 0.2 means 1/5, not 0.2000000000000000111
  return np.vectorize(lambda n: round(frac * int(n)), otypes=[np.int64])(alive)


def _alive(mask_leaf, ticket_axes: int) -> np.ndarray:
  m = np.asarray(mask_leaf)
  return m.reshape(m.shape[:ticket_axes] + (-1,)).sum(axis=-1)


def prune_counts(mask: PyTree, kinds: PyTree, rates: PyTree, scope: str = LAYERWISE,
                 ticket_axes: int = 0) -> PyTree:
  """How many weights each leaf (layerwise) or the pool of leaves (global) loses this round.

  `mask` may carry `ticket_axes` leading axes; counts are then per ticket. Layerwise returns a
  pytree of int arrays like `mask`'s structure (0 for fixed leaves); global returns one int array.
  Raises PruningError for a bad rate or if any pruned layer (or the pool) would be emptied.
  """
  paths_masks = jax.tree_util.tree_flatten_with_path(mask)[0]
  treedef = jax.tree.structure(mask)
  leaves_k, leaves_r = jax.tree.leaves(kinds), jax.tree.leaves(rates)
  for r, k in zip(leaves_r, leaves_k):
    validate_rate(r, k)
  alive = [_alive(m, ticket_axes) for _, m in paths_masks]
  if scope == LAYERWISE:
    counts = []
    for (path, _), a, r in zip(paths_masks, alive, leaves_r):
      c = _exact_round(r, a)
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
    c = _exact_round(pooled[0] if pooled else 0.0, pool)
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


@jax.jit
def _select_layerwise(scores, mask, counts):
  return jax.tree.map(lambda s, m, k: drop_lowest(s.ravel(), m.ravel(), k).reshape(m.shape),
                      scores, mask, counts)


@functools.partial(jax.jit, static_argnames="pooled")
def _select_global(scores, mask, count, pooled: tuple[bool, ...]):
  """`pooled[i]` says whether leaf i joins the global pool."""
  s_leaves, m_leaves = jax.tree.leaves(scores), jax.tree.leaves(mask)
  idx = [i for i, p in enumerate(pooled) if p]
  flat_s = jnp.concatenate([s_leaves[i].ravel() for i in idx])
  flat_m = jnp.concatenate([m_leaves[i].ravel() for i in idx])
  new_flat = drop_lowest(flat_s, flat_m, count)
  out, offset = list(m_leaves), 0
  for i in idx:
    n = m_leaves[i].size
    out[i] = new_flat[offset:offset + n].reshape(m_leaves[i].shape)
    offset += n
  return jax.tree.unflatten(jax.tree.structure(mask), out)


def prune(scores: PyTree, mask: PyTree, kinds: PyTree, rates: PyTree, scope: str = LAYERWISE,
          ticket_axes: int = 0) -> PyTree:
  """One pruning round: drop round(rate * alive) lowest-scoring alive weights per leaf or pool.

  `scores` and `mask` may be stacked on `ticket_axes` (0 or 1) leading axes; each ticket is pruned
  independently. Fixed leaves and rate-0 leaves keep their mask.
  """
  if ticket_axes not in (0, 1):
    raise PruningError(f"ticket_axes must be 0 or 1, got {ticket_axes}")
  counts = prune_counts(mask, kinds, rates, scope, ticket_axes)
  if scope == LAYERWISE:
    select = _select_layerwise
    args = (scores, mask, jax.tree.map(jnp.asarray, counts))
    if ticket_axes:
      return jax.vmap(select)(*args)
    return select(*args)
  pooled = tuple(r > 0 for r in jax.tree.leaves(rates))
  if not any(pooled):
    return mask
  select = functools.partial(_select_global, pooled=pooled)
  if ticket_axes:
    return jax.vmap(select)(scores, mask, jnp.asarray(counts))
  return select(scores, mask, jnp.asarray(counts))


def prune_round(trained: PyTree, init: PyTree, mask: PyTree, kinds: PyTree, rates: PyTree,
                scope: str = LAYERWISE, score: str = "magnitude", key: jax.Array | None = None,
                ticket_axes: int = 0, invert: bool = False) -> PyTree:
  """Score with a registered criterion, then `prune`. The usual one-liner of an IMP round.
  `invert` drops the highest scores instead (Frankle et al. 2021's inverted-score check)."""
  score_fn = get_score(score)
  if key is None:
    key = jax.random.key(0)
  if ticket_axes:
    n = jax.tree.leaves(mask)[0].shape[0]
    keys = key if jnp.ndim(key) == 1 else jax.random.split(key, n)
    scores = _scores(score_fn, True, invert, trained, init, keys)
  else:
    scores = _scores(score_fn, False, invert, trained, init, key)
  return prune(scores, mask, kinds, rates, scope, ticket_axes)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _scores(score_fn: ScoreFn, stacked: bool, invert: bool, trained, init, key):
  """A criterion's scores as one program (eagerly, each of its ops compiled once per leaf shape)."""
  scores = (jax.vmap(score_fn) if stacked else score_fn)(trained, init, key)
  return jax.tree.map(jnp.negative, scores) if invert else scores
