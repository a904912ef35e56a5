"""Each trial's weights scored and pruned by the configured score: all trials in one program
where the score sees weights only; trial by trial, each with its network and a batch of its own,
where the score needs them (SNIP, GraSP, SynFlow, or a user's network-aware score)."""

from __future__ import annotations

from typing import Any

import jax

from ltjax import lineup
from ltjax.core import pruning, scores
from ltjax.engine import parallel, train

PyTree = Any


def score_network(setup, params: PyTree, model_state: PyTree, dataset, key: jax.Array) -> scores.Network:
  """What a network-aware score sees for one trial: the model in evaluation mode at
  `model_state`, its training loss, and one training batch drawn by `key`."""
  trainer = setup.trainer
  idx = jax.random.permutation(key, len(dataset.train))[:trainer.batch_size]
  logits = lambda p, x, ms=model_state: trainer.logits(p, ms, x, train=False)[0]  # noqa: E731
  return scores.Network(
      apply=logits, loss=lambda p, x, y, f=logits: train.cross_entropy(f(p, x), y),
      input_shape=dataset.input_shape, images=dataset.normalize(dataset.train.images[idx]),
      labels=dataset.train.labels[idx])


def prune_trials(request, params: PyTree, model_state: PyTree, mask: PyTree, rates: PyTree,
                 invert: bool = False) -> PyTree:
  """Every trial's `mask` pruned at `rates` by `prune.score` on `params` ([trials, ...] each)."""
  setup, cfg = request.setup, request.setup.cfg
  init = request.lineage.init_params
  if not scores.get(cfg.prune.score).needs_network:
    return pruning.prune_round(params, init, mask, setup.roles, rates, cfg.prune.scope,
                               cfg.prune.score, lineup.trial_keys(request), ticket_axes=1, invert=invert)
  out = []
  for t in range(cfg.trials):
    pick = lambda tree, t=t: jax.tree.map(lambda x: x[t], tree)  # noqa: E731
    key = lineup.trial_key(request, t)
    net = score_network(setup, pick(params), pick(model_state), request.dataset, key)
    out.append(pruning.prune_round(pick(params), pick(init), pick(mask), setup.roles, rates,
                                   cfg.prune.scope, cfg.prune.score, key, invert=invert, net=net))
  return parallel.stack(out)
