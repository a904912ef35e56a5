"""Iterative magnitude pruning (the paper's IMP): each round, each trial's trained ticket loses
`rate` of its surviving weights per layer role (or of the pool, global), by `prune.score`; or of
its units, N:M groups or blocks (`prune.sparsity_type`, `ltjax.methods.structured`)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ltjax import lineup
from ltjax.methods import modes, scoring, structured


@modes.register("iterative", pruned_rounds=lambda cfg: cfg.prune.rounds, fine_tunes=True,
                structures=("units", "n:m", "block"), check=structured.check)
def find(request: modes.Request) -> modes.Found:
  """IMP: prune each trial's trained ticket at the config's per-role rates."""
  setup, lineage, cfg = request.setup, request.lineage, request.setup.cfg
  if cfg.prune.get("sparsity_type", "unstructured") != "unstructured":
    mask = structured.prune_trials(request)
  else:
    mask = scoring.prune_trials(request, request.trained, request.trained_model_state, lineage.mask,
                                setup.rates)
  # Each round costs its training, from the rewind point once the run rewinds.
  spent = cfg.train.steps - (lineup.rewind_steps(setup) if request.round_index else 0)
  return modes.Found(mask, lineage.found_after + jnp.asarray(np.broadcast_to(spent, cfg.trials), jnp.int32))
