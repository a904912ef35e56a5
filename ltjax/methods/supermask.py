"""Supermasks (Zhou et al. 2019): learn only a mask over frozen random weights.

Each prunable weight gets a score s; the forward pass uses w * m with m ~ Bernoulli(sigmoid(s)),
and the gradient passes the sampling straight through (dm/dsigmoid(s) = 1), so the scores learn
which of the untrained weights to keep. The weights never change; at the end the mask is
sigmoid(s) > 0.5 (or a sample). Fixed leaves (biases, norms) keep their initial values unmasked.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax.core.roles import PRUNABLE
from ltjax.data import Dataset

PyTree = Any


@dataclasses.dataclass
class Result:
  scores: PyTree
  mask: PyTree              # sigmoid(score) > 0.5 on prunable leaves, all-ones elsewhere
  density: float            # of the prunable weights
  test_accuracy: float      # with `mask`
  sampled_test_accuracy: float  # with one Bernoulli sample of the mask
  losses: np.ndarray


def _sample(scores, roles, key):
  """Bernoulli(sigmoid(s)) with a straight-through gradient to sigmoid(s)."""
  leaves, treedef = jax.tree.flatten(scores)
  keys = jax.random.split(key, len(leaves))
  out = []
  for s, role, k in zip(leaves, jax.tree.leaves(roles), keys):
    if role not in PRUNABLE:
      out.append(jnp.ones_like(s))
      continue
    p = jax.nn.sigmoid(s)
    m = jax.random.bernoulli(k, p).astype(s.dtype)
    out.append(p + jax.lax.stop_gradient(m - p))
  return jax.tree.unflatten(treedef, out)


def train(apply: Callable[[PyTree, jax.Array], jax.Array], params: PyTree, roles: PyTree,
          dataset: Dataset, steps: int, key: jax.Array, batch_size: int = 60, lr: float = 0.1,
          score_init: float = 1.0) -> Result:
  """Learn a supermask for `params` (frozen) on `dataset`; `apply(params, images) -> logits`."""
  if steps < 1 or batch_size < 1 or not lr > 0:
    raise ValueError(f"need steps >= 1, batch_size >= 1, lr > 0; got {steps}, {batch_size}, {lr}")
  scores = jax.tree.map(lambda p: jnp.full(p.shape, score_init, jnp.float32), params)
  tx = optax.adam(lr)
  opt = tx.init(scores)
  n = len(dataset.train)

  def loss_fn(scores, images, labels, k):
    mask = _sample(scores, roles, k)
    logits = apply(jax.tree.map(lambda w, m: w * m, params, mask), images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @jax.jit
  def run(scores, opt, key):
    def step(carry, k):
      scores, opt = carry
      kb, km = jax.random.split(k)
      idx = jax.random.randint(kb, (batch_size,), 0, n)
      loss, g = jax.value_and_grad(loss_fn)(scores, dataset.normalize(dataset.train.images[idx]),
                                            dataset.train.labels[idx], km)
      updates, opt = tx.update(g, opt, scores)
      return (optax.apply_updates(scores, updates), opt), loss
    (scores, opt), losses = jax.lax.scan(step, (scores, opt), jax.random.split(key, steps))
    return scores, opt, losses

  train_key, sample_key = jax.random.split(key)
  scores, opt, losses = run(scores, opt, train_key)
  mask = jax.tree.map(lambda s, role: (s > 0) if role in PRUNABLE else jnp.ones(s.shape, bool),
                      scores, roles)
  sampled = jax.tree.map(lambda m: m > 0.5, _sample(scores, roles, sample_key))
  kept = sum(int(m.sum()) for m, k in zip(jax.tree.leaves(mask), jax.tree.leaves(roles)) if k in PRUNABLE)
  total = sum(m.size for m, k in zip(jax.tree.leaves(mask), jax.tree.leaves(roles)) if k in PRUNABLE)
  return Result(scores, mask, kept / total, accuracy(apply, params, mask, dataset),
                accuracy(apply, params, sampled, dataset), np.asarray(losses))


def accuracy(apply, params, mask, dataset: Dataset) -> float:
  """Test accuracy of `params` under `mask` (None: unmasked)."""
  masked = params if mask is None else jax.tree.map(lambda w, m: w * m, params, mask)
  f = jax.jit(lambda x: apply(masked, x).argmax(-1))
  correct = 0
  for i in range(0, len(dataset.test), 1000):
    correct += int((f(dataset.normalize(dataset.test.images[i:i + 1000])) ==
                    dataset.test.labels[i:i + 1000]).sum())
  return correct / len(dataset.test)
