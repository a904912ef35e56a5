"""Tickets found at initialization: theta_0 pruned straight to each density of `prune.densities`
by a score that may see the network and data (SNIP, GraSP, SynFlow; any registered score).

`prune_at_init` draws one mask: each prunable layer (layerwise) or all of them (global) to an
exact density, in `iterations` score-and-prune steps (SynFlow's 100, the density falling as
density^(k/n)), through `ltjax.core.pruning`'s one selection. `invert` keeps the lowest scores
instead (Frankle et al. 2021's sanity check).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from ltjax import lineup
from ltjax.core import masks, pruning, scores, tickets
from ltjax.core.roles import PRUNABLE
from ltjax.engine import parallel
from ltjax.methods import modes, scoring

PyTree = Any


def prune_at_init(score: str, params: PyTree, mask: PyTree, roles: PyTree, density: float,
                  scope: str = pruning.LAYERWISE, net: scores.Network | None = None,
                  key: jax.Array | None = None, invert: bool = False) -> PyTree:
  """The mask keeping `density` of each prunable layer (layerwise) or of all (global), by `score`."""
  try:
    entry = scores.get(score)
  except scores.ScoreError as e:
    raise pruning.PruningError(str(e)) from None
  if entry.needs_network and net is None:
    raise pruning.PruningError(f"score {score!r} needs the network (a scores.Network)")
  if entry.needs_data and (net is None or net.images is None or net.labels is None):
    raise pruning.PruningError(f"score {score!r} needs data: give Network(images=..., labels=...)")
  key = jax.random.key(0) if key is None else key
  removals = pruning.density_counts(mask, roles, density, scope, entry.iterations)
  pooled = tuple(k in PRUNABLE for k in jax.tree.leaves(roles))
  static = None if net is None else scores.Network(net.apply, net.loss, tuple(net.input_shape))
  images, labels = (None, None) if net is None else (net.images, net.labels)
  return _prune_steps(entry.fn, static, invert, scope, pooled, params, mask, images, labels, key,
                      removals)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _prune_steps(score_fn, net, invert, scope, pooled, params, mask, images, labels, key, removals):
  """All steps of scoring and exact selection as one compiled loop (SynFlow runs 100)."""
  context = scores.Context(init=params, net=None if net is None else scores.Network(
      net.apply, net.loss, net.input_shape, images, labels))

  def one_step(i, mask):
    s = score_fn(params, mask, jax.random.fold_in(key, i + 1), context)
    s = jax.tree.map(lambda x: (-x if invert else x).astype(jnp.float32), s)
    return pruning.select(s, mask, removals[i], pooled, scope)

  return jax.lax.fori_loop(0, removals.shape[0], one_step, mask)


def at_init_masks(request: modes.Request, density: float, invert: bool = False) -> PyTree:
  """Each trial's mask at `density`, found at its theta_0 on one training batch drawn per trial."""
  setup, lineage, cfg = request.setup, request.lineage, request.setup.cfg
  out = []
  for t in range(cfg.trials):
    params, model_state = (jax.tree.map(lambda x, t=t: x[t], tree)
                           for tree in (lineage.init_params, lineage.init_model_state))
    k = lineup.trial_key(request, t)
    net = scoring.score_network(setup, params, model_state, request.dataset, k)
    out.append(prune_at_init(cfg.prune.score, params, masks.ones(params), setup.roles, density,
                             cfg.prune.scope, net, k, invert))
  return parallel.stack(out)


@modes.register("at_init", inverts=True)
def find(request: modes.Request) -> modes.Found:
  """At init: prune each trial's theta_0 to the round's density by `prune.score`."""
  cfg = request.setup.cfg
  density = cfg.prune.densities[request.round_index]
  inverted = (at_init_masks(request, density, invert=True)
              if tickets.INVERTED in cfg.controls else None)
  return modes.Found(at_init_masks(request, density), jnp.zeros(cfg.trials, jnp.int32), inverted)
