"""One-shot pruning: the trained dense net (round 0) pruned straight to each density of
`prune.densities`, keeping IMP's proportions between layer roles."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ltjax import wiring
from ltjax.core import masks, pruning, tickets
from ltjax.methods import modes, scoring

PyTree = Any


def one_shot_rates(setup, lineage, density: float) -> PyTree:
  """Per-leaf rates that take a dense net to `density` in one step (IMP's role proportions)."""
  sizes = masks.sizes_by_role(jax.tree.map(lambda x: x[0], lineage.init_params), setup.roles)
  return pruning.rates_tree(setup.roles, pruning.one_shot_rates(wiring.role_rates(setup.cfg), sizes,
                                                                density))


@modes.register("oneshot", inverts=True, prunes_dense=True)
def find(request: modes.Request) -> modes.Found:
  """One-shot: prune each trial's trained dense net to the round's density."""
  setup, lineage, cfg = request.setup, request.lineage, request.setup.cfg
  rates = one_shot_rates(setup, lineage, cfg.prune.densities[request.round_index])
  dense = jax.vmap(masks.ones)(lineage.init_params)
  # A network-aware score sees theta_0's batch statistics: the lineage keeps the dense weights only.
  prune = lambda invert: scoring.prune_trials(  # noqa: E731
      request, lineage.dense_params, lineage.init_model_state, dense, rates, invert)
  inverted = prune(True) if tickets.INVERTED in cfg.controls else None
  return modes.Found(prune(False), jnp.ones(cfg.trials, jnp.int32) * cfg.train.steps, inverted)
