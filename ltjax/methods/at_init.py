"""Pruning criteria that see the network and data, for finding tickets at initialization.

`pruning` scores weights from (trained, init) values alone; the criteria here also need the
model: SNIP and GraSP a loss on a batch, SynFlow the forward pass on an all-ones input. Each is a
small function `score(params, mask, net, key) -> scores` (higher = keep), registered by name,
and `prune_at_init` turns any of them (the weight-only ones too) into a mask at an exact density,
layerwise or global, reusing `pruning`'s exact counts and deterministic selection. `invert`
is Frankle et al. 2021's sanity check of keeping the lowest scores instead.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax.core import masks as masks_lib
from ltjax.core import pruning
from ltjax.core.roles import FIXED, PRUNABLE_KINDS

PyTree = Any


class CriterionError(ValueError):
  """A criterion that cannot run as asked (unknown, missing data, unreachable density)."""


@dataclasses.dataclass(frozen=True)
class Network:
  """What a data-aware criterion may look at.

  apply: `apply(params, x) -> logits`, the model in evaluation mode.
  loss: `loss(params, images, labels) -> scalar`, the training loss.
  images, labels: the batch SNIP and GraSP score on (None for data-free criteria).
  input_shape: one example's shape (SynFlow feeds ones of this shape).
  """
  apply: Callable[[PyTree, jax.Array], jax.Array]
  loss: Callable[[PyTree, jax.Array, jax.Array], jax.Array]
  input_shape: tuple[int, ...]
  images: jax.Array | None = None
  labels: jax.Array | None = None


ScoreFn = Callable[[PyTree, PyTree, Network | None, jax.Array], PyTree]


@dataclasses.dataclass(frozen=True)
class Criterion:
  score: ScoreFn
  needs_data: bool = False   # a batch in `Network`
  needs_network: bool = True
  iterations: int = 1        # scored and pruned this many times, density shrinking exponentially


_CRITERIA: dict[str, Criterion] = {}


def register(name: str, criterion: Criterion) -> Criterion:
  _CRITERIA[name] = criterion
  return criterion


def names() -> list[str]:
  return sorted(_CRITERIA)


def get(name: str) -> Criterion:
  if name not in _CRITERIA:
    raise CriterionError(f"unknown criterion {name!r}; known: {', '.join(names())}")
  return _CRITERIA[name]


# ---------------------------------------------------------------- the criteria
def snip(params, mask, net: Network, key):
  """SNIP (Lee et al. 2019): connection sensitivity |dL/dtheta * theta| on a batch."""
  del key
  masked = masks_lib.apply(params, mask)
  g = jax.grad(net.loss)(masked, net.images, net.labels)
  return jax.tree.map(lambda gi, p: jnp.abs(gi * p), g, masked)


GRASP_TEMPERATURE = 200.0  # the authors' code divides the logits by T=200 before the loss


def grasp(params, mask, net: Network, key, temperature: float = GRASP_TEMPERATURE):
  """GraSP (Wang et al. 2020): S = -theta * Hg, with Hg a JVP of the gradient (no Hessian), of
  the cross-entropy of logits / `temperature` as in the authors' code (it keeps Hg from
  vanishing when the softmax saturates).

  GraSP removes the weights with the *largest* S (removing them reduces gradient flow least), so
  the score returned here is -S = theta * Hg: pruning drops the lowest scores, as for the others.
  """
  del key
  masked = masks_lib.apply(params, mask)
  tempered = lambda p: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
      net.apply(p, net.images) / temperature, net.labels).mean()
  grad_fn = jax.grad(tempered)
  g = jax.lax.stop_gradient(grad_fn(masked))
  _, hg = jax.jvp(grad_fn, (masked,), (g,))
  return jax.tree.map(lambda p, h: p * h, masked, hg)


def synflow(params, mask, net: Network, key):
  """SynFlow (Tanaka et al. 2020), one scoring: R = sum f(1; |theta|), score |dR/dtheta * theta|.

  Data-free: the input is all ones and every parameter (biases too) is replaced by its absolute
  value, so R sums the network's positive paths. `prune_at_init` iterates it (100 rounds).
  """
  del key
  positive = jax.tree.map(jnp.abs, masks_lib.apply(params, mask))
  ones = jnp.ones((1,) + tuple(net.input_shape), jnp.float32)
  g = jax.grad(lambda p: jnp.sum(net.apply(p, ones)))(positive)
  return jax.tree.map(lambda gi, p: gi * p, g, positive)


def _weights_only(fn):
  """A `pruning` score (trained, init, key) used at init: trained = init = the current weights."""
  def score(params, mask, net, key):
    del mask, net
    return fn(params, params, key)
  return score


register("snip", Criterion(snip, needs_data=True))
register("grasp", Criterion(grasp, needs_data=True))
register("synflow", Criterion(synflow, iterations=100))
register("magnitude", Criterion(_weights_only(pruning.magnitude), needs_network=False))
register("random", Criterion(_weights_only(pruning.random), needs_network=False))


# ---------------------------------------------------------------- one-shot pruning to a density
def prune_at_init(name: str, params: PyTree, mask: PyTree, kinds: PyTree, density: float,
                  scope: str = pruning.LAYERWISE, net: Network | None = None,
                  key: jax.Array | None = None, invert: bool = False) -> PyTree:
  """The mask keeping `density` of each prunable layer (layerwise) or of all (global), by `name`.

  Criteria with `iterations` > 1 (SynFlow) rescore and prune that many times, the density
  falling as density^(k/n), as in their paper; the others score once. `invert=True` keeps the
  lowest scores instead (a sanity check: a good criterion should do much worse inverted).
  """
  criterion = get(name)
  if not 0.0 < density <= 1.0:
    raise CriterionError(f"density must be in (0, 1], got {density!r}")
  if scope not in (pruning.LAYERWISE, pruning.GLOBAL):
    raise CriterionError(f"scope must be {pruning.LAYERWISE!r} or {pruning.GLOBAL!r}, got {scope!r}")
  if criterion.needs_network and net is None:
    raise CriterionError(f"criterion {name!r} needs the network (a Network)")
  if criterion.needs_data and (net is None or net.images is None or net.labels is None):
    raise CriterionError(f"criterion {name!r} needs data: give Network(images=..., labels=...)")
  key = jax.random.key(0) if key is None else key
  n = criterion.iterations
  removals = removal_schedule(mask, kinds, density, scope, n)  # exact counts, known in advance
  pooled = tuple(k in PRUNABLE_KINDS for k in jax.tree.leaves(kinds))
  return _prune_rounds(name, *_static(net), invert, scope, pooled, params, mask, *_batch(net), key,
                       removals)


def removal_schedule(mask: PyTree, kinds: PyTree, density: float, scope: str, n: int = 1) -> np.ndarray:
  """Weights to remove in each of n rounds that take every prunable layer (layerwise: [n, leaves])
  or all of them together (global: [n, 1]) to density^(k/n) of its size, exactly. Raises
  CriterionError if a density would leave a layer (or the pool) empty."""
  leaves = jax.tree.leaves(mask)
  prunable = [k in PRUNABLE_KINDS for k in jax.tree.leaves(kinds)]
  alive = np.array([int(np.asarray(m).sum()) for m in leaves])
  sizes = np.array([m.size for m in leaves])
  out = np.zeros((n, len(leaves) if scope == pruning.LAYERWISE else 1), np.int32)
  for i in range(1, n + 1):
    d = density ** (i / n)
    if scope == pruning.GLOBAL:
      pool, keep = alive[prunable].sum(), round(d * sizes[prunable].sum())
      if not 0 < keep <= pool:
        raise CriterionError(f"density {density:g} is not reachable from {pool} of "
                             f"{sizes[prunable].sum()} weights")
      out[i - 1, 0] = pool - keep
      alive = alive.copy()
      alive[np.flatnonzero(prunable)[0]] -= pool - keep  # only the pool's total matters
      continue
    for j, (a, size, p) in enumerate(zip(alive, sizes, prunable)):
      keep = round(d * size)
      if p and not 0 < keep <= a:
        raise CriterionError(f"density {density:g} is not reachable in a layer of {size} weights "
                             f"with {a} alive (it would keep {keep})")
      out[i - 1, j] = a - keep if p else 0
    alive = alive - out[i - 1]
  return out


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _prune_rounds(name, apply, loss, input_shape, invert, scope, pooled, params, mask, images,
                  labels, key, removals):
  """All rounds of scoring and exact selection as one compiled loop (SynFlow runs 100)."""
  net = None if apply is None else Network(apply, loss, input_shape, images, labels)
  score_fn = get(name).score
  treedef = jax.tree.structure(mask)

  def one_round(i, mask):
    scores = score_fn(params, mask, net, jax.random.fold_in(key, i + 1))
    s_leaves = [(-x if invert else x).astype(jnp.float32) for x in jax.tree.leaves(scores)]
    m_leaves = jax.tree.leaves(mask)
    if scope == pruning.LAYERWISE:
      out = [pruning.drop_lowest(s.ravel(), m.ravel(), removals[i, j]).reshape(m.shape)
             if p else m for j, (s, m, p) in enumerate(zip(s_leaves, m_leaves, pooled))]
      return jax.tree.unflatten(treedef, out)
    idx = [j for j, p in enumerate(pooled) if p]
    flat = pruning.drop_lowest(jnp.concatenate([s_leaves[j].ravel() for j in idx]),
                                jnp.concatenate([m_leaves[j].ravel() for j in idx]), removals[i, 0])
    out, offset = list(m_leaves), 0
    for j in idx:
      out[j] = flat[offset:offset + m_leaves[j].size].reshape(m_leaves[j].shape)
      offset += m_leaves[j].size
    return jax.tree.unflatten(treedef, out)

  return jax.lax.fori_loop(0, removals.shape[0], one_round, mask)


def _static(net: Network | None):
  return (None, None, None) if net is None else (net.apply, net.loss, tuple(net.input_shape))


def _batch(net: Network | None):
  return (None, None) if net is None else (net.images, net.labels)


__all__ = ["Criterion", "CriterionError", "Network", "FIXED", "get", "grasp", "names",
           "prune_at_init", "register", "removal_schedule", "snip", "synflow"]
