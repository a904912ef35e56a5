"""Pruning scores: one registry and one signature for every way of finding a mask.

    score(params, mask, key, context) -> pytree of floats like `params`; higher = keep

`params` are the weights a mask is drawn from (the trained ticket in IMP, the trained dense net
in one-shot, theta_0 at init); `context.init` is theta_0; `context.net`, for scores registered
with `needs_network`, is the model and (`needs_data`) a training batch. IMP, one-shot and at-init
all prune by a registered score through `ltjax.core.pruning`'s exact-count selection, so a score
registered here (from user code too) gets every mode, control and report of a built-in one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from ltjax.core import masks as masks_lib

PyTree = Any


class ScoreError(ValueError):
  """A score that cannot run as asked (unknown, or missing the network or data it needs)."""


@dataclasses.dataclass(frozen=True)
class Network:
  """What a network-aware score may look at.

  apply: `apply(params, x) -> logits`, the model in evaluation mode.
  loss: `loss(params, images, labels) -> scalar`, the training loss.
  input_shape: one example's shape (SynFlow feeds ones of this shape).
  images, labels: the batch SNIP and GraSP score on (None for data-free scores).
  """
  apply: Callable[[PyTree, jax.Array], jax.Array]
  loss: Callable[[PyTree, jax.Array, jax.Array], jax.Array] | None
  input_shape: tuple[int, ...]
  images: jax.Array | None = None
  labels: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Context:
  """What a score sees besides the weights it scores: theta_0, and the network where it needs one."""
  init: PyTree
  net: Network | None = None


ScoreFn = Callable[[PyTree, PyTree, jax.Array, Context], PyTree]


@dataclasses.dataclass(frozen=True)
class Score:
  fn: ScoreFn
  needs_network: bool = False  # `context.net` with apply and loss
  needs_data: bool = False     # ... and a batch of training data
  iterations: int = 1          # pruned to a density in this many score-and-prune steps (SynFlow)
  description: str = ""
  scope: str = "layerwise"     # the published method's: what prune.scope='auto' means for it


_SCORES: dict[str, Score] = {}


def register(name: str, fn: ScoreFn | None = None, *, needs_network: bool = False,
             needs_data: bool = False, iterations: int = 1, scope: str = "layerwise"):
  """Register `fn` as the score `name` (also usable as a decorator); returns `fn`. `scope` is
  how the method's paper pools layers ('layerwise' or 'global'): prune.scope='auto' takes it."""
  def add(fn: ScoreFn) -> ScoreFn:
    if not callable(fn):
      raise ScoreError(f"score {name!r} must be callable, got {type(fn).__name__}")
    if scope not in ("layerwise", "global"):
      raise ScoreError(f"score {name!r}: scope must be 'layerwise' or 'global', got {scope!r}")
    if not isinstance(iterations, int) or iterations < 1:
      raise ScoreError(f"score {name!r}: iterations must be an integer >= 1, got {iterations!r}")
    doc = (fn.__doc__ or "").strip().splitlines()
    _SCORES[name] = Score(fn, needs_network or needs_data, needs_data, iterations,
                          doc[0] if doc else "", scope)
    return fn
  return add if fn is None else add(fn)


def names() -> list[str]:
  return sorted(_SCORES)


def get(name: str) -> Score:
  if name not in _SCORES:
    raise ScoreError(f"unknown pruning score {name!r}; known: {', '.join(names())}")
  return _SCORES[name]


# ---------------------------------------------------------------- weights only
@register("magnitude")
def magnitude(params, mask, key, context):
  """The paper's criterion: keep the largest |weight| (Zhou et al.'s `large_final`)."""
  del mask, key, context
  return jax.tree.map(jnp.abs, params)


register("large_final", magnitude)


@register("magnitude_increase")
def magnitude_increase(params, mask, key, context):
  """Zhou et al.'s `magnitude_increase`: |w_final| - |w_init|."""
  del mask, key
  return jax.tree.map(lambda t, i: jnp.abs(t) - jnp.abs(i), params, context.init)


@register("movement")
def movement(params, mask, key, context):
  """|w_final - w_init|: how far training moved each weight."""
  del mask, key
  return jax.tree.map(lambda t, i: jnp.abs(t - i), params, context.init)


@register("random")
def random(params, mask, key, context):
  """Uniform random scores: random pruning at the same counts."""
  del mask, context
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.uniform(k, x.shape) for k, x in zip(keys, leaves)])


@register("large_init")
def large_init(params, mask, key, context):
  """Zhou et al.'s `large_init`: keep the largest |w_init| (the training is ignored)."""
  del params, mask, key
  return jax.tree.map(jnp.abs, context.init)


@register("small_init")
def small_init(params, mask, key, context):
  """Zhou et al.'s `small_init`: keep the smallest |w_init| (a control: expected to be poor)."""
  del params, mask, key
  return jax.tree.map(lambda i: -jnp.abs(i), context.init)


@register("small_final")
def small_final(params, mask, key, context):
  """Zhou et al.'s `small_final`: keep the smallest |w_final| (a control: expected to be poor)."""
  del mask, key, context
  return jax.tree.map(lambda t: -jnp.abs(t), params)


@register("large_init_large_final")
def large_init_large_final(params, mask, key, context):
  """Zhou et al.'s `large_init_large_final`: large at both ends, min(|w_init|, |w_final|)."""
  del mask, key
  return jax.tree.map(lambda t, i: jnp.minimum(jnp.abs(t), jnp.abs(i)), params, context.init)


@register("small_init_small_final")
def small_init_small_final(params, mask, key, context):
  """Zhou et al.'s `small_init_small_final`: small at both ends, -max(|w_init|, |w_final|)."""
  del mask, key
  return jax.tree.map(lambda t, i: -jnp.maximum(jnp.abs(t), jnp.abs(i)), params, context.init)


# ---------------------------------------------------------------- the network too
@register("snip", needs_data=True, scope="global")
def snip(params, mask, key, context):
  """SNIP (Lee et al. 2019): connection sensitivity |dL/dtheta * theta| on a batch."""
  del key
  net = context.net
  masked = masks_lib.apply(params, mask)
  g = jax.grad(net.loss)(masked, net.images, net.labels)
  return jax.tree.map(lambda gi, p: jnp.abs(gi * p), g, masked)


GRASP_TEMPERATURE = 200.0  # the authors' code divides the logits by T=200 before the loss


@register("grasp", needs_data=True, scope="global")
def grasp(params, mask, key, context, temperature: float = GRASP_TEMPERATURE):
  """GraSP (Wang et al. 2020): S = -theta * Hg, Hg a JVP of the gradient of the tempered loss.

  The cross-entropy of logits / `temperature`, as in the authors' code, keeps Hg from vanishing
  when the softmax saturates. GraSP removes the weights with the *largest* S, so the score is
  -S = theta * Hg: pruning drops the lowest scores, as for the others.
  """
  del key
  net = context.net
  masked = masks_lib.apply(params, mask)
  tempered = lambda p: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
      net.apply(p, net.images) / temperature, net.labels).mean()
  grad_fn = jax.grad(tempered)
  g = jax.lax.stop_gradient(grad_fn(masked))
  _, hg = jax.jvp(grad_fn, (masked,), (g,))
  return jax.tree.map(lambda p, h: p * h, masked, hg)


@register("synflow", needs_network=True, iterations=100, scope="global")
def synflow(params, mask, key, context):
  """SynFlow (Tanaka et al. 2020), one scoring: R = sum f(1; |theta|), score |dR/dtheta * theta|.

  Data-free: the input is all ones and every parameter (biases too) is replaced by its absolute
  value, so R sums the network's positive paths; pruned to a density in 100 steps.
  """
  del key
  positive = jax.tree.map(jnp.abs, masks_lib.apply(params, mask))
  ones = jnp.ones((1,) + tuple(context.net.input_shape), jnp.float32)
  g = jax.grad(lambda p: jnp.sum(context.net.apply(p, ones)))(positive)
  return jax.tree.map(lambda gi, p: gi * p, g, positive)
