"""Iterative magnitude pruning (the paper's IMP): each round, each trial's trained ticket loses
`rate` of its surviving weights per layer role (or of the pool, global), by `prune.score`."""

from __future__ import annotations

import jax.numpy as jnp

from ltjax.methods import modes, scoring


@modes.register("iterative", pruned_rounds=lambda cfg: cfg.prune.rounds, fine_tunes=True)
def find(request: modes.Request) -> modes.Found:
  """IMP: prune each trial's trained ticket at the config's per-role rates."""
  setup, lineage, cfg = request.setup, request.lineage, request.setup.cfg
  mask = scoring.prune_trials(request, request.trained, request.trained_model_state, lineage.mask,
                              setup.rates)
  # Each round costs its training, from the rewind point once the run rewinds.
  spent = cfg.train.steps - (cfg.prune.rewind_step if request.round_index else 0)
  return modes.Found(mask, lineage.found_after + jnp.ones(cfg.trials, jnp.int32) * spent)
