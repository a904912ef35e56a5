"""IMP by structure: whole units (dense units, conv channels), N:M patterns or blocks instead of
single weights, so that a ticket can run as a smaller or faster dense network.

Each round, each pruned layer keeps round((1 - rate) * g) of its g live groups, ranked by their
mean score (the configured weights-only score, magnitude by default). Under 'units' the output
layer's units are the classes and are never pruned, and a pruned unit takes its outgoing weights
in the next layer along (`structure.couple_chain`). Under 'N:M' the rounds walk down the pattern
one kept weight per group at a time: '2:4' prunes to 3:4, then 2:4 (prune.rounds must be M - N).
The random-mask control shuffles within the structure (`structure.Structure.shuffle`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import lineup
from ltjax.core import masks, pruning, scores, structure
from ltjax.core.pruning import PruningError
from ltjax.core.roles import PRUNABLE

PyTree = Any


def plan(cfg, shapes: PyTree) -> tuple[structure.Structure, tuple[int, ...]]:
  """The run's sparsity type and, under 'units', the network's layers in forward order."""
  kind = structure.parse(cfg.prune.get("sparsity_type", "unstructured"))
  return kind, (structure.unit_chain(shapes) if kind.kind == "units" else ())


def pruned_leaves(rates: PyTree, roles: PyTree, chain: tuple[int, ...]) -> list[bool]:
  """Which leaves lose groups: prunable ones with a rate, but never the classes (the chain's end)."""
  return [role in PRUNABLE and rate > 0 and not (chain and i == chain[-1])
          for i, (rate, role) in enumerate(zip(jax.tree.leaves(rates), jax.tree.leaves(roles)))]


def live_groups(kind: structure.Structure, mask: np.ndarray) -> np.ndarray:
  """[trials] live groups (a group lives while any weight does) of one stacked mask leaf."""
  ids = kind.group_ids(mask.shape[1:])
  return np.array([np.unique(ids[np.asarray(m, bool)]).size for m in mask])


def check(setup) -> None:
  """Refuse, in one line, what cannot work before anything is written: a score that needs the
  network, a global pool, N:M rounds that do not end at N:M, a type the shapes cannot take, and a
  layer the rounds would empty."""
  cfg = setup.cfg
  shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
  kind, chain = plan(cfg, shapes)
  if kind.kind == "unstructured":
    return
  if scores.get(cfg.prune.score).needs_network:
    raise PruningError(f"{kind} pruning ranks groups by a weights-only score; {cfg.prune.score!r} "
                       "needs the network (use e.g. 'magnitude')")
  if cfg.prune.scope != pruning.LAYERWISE:
    raise PruningError(f"{kind} pruning keeps a fraction of each layer's groups; use "
                       f"prune.scope='layerwise', not {cfg.prune.scope!r}")
  if kind.kind == "n:m" and cfg.prune.rounds != kind.m - kind.n:
    raise PruningError(f"{kind} IMP keeps one weight fewer per group of {kind.m} each round "
                       f"({kind.m - 1}:{kind.m} first): it needs prune.rounds={kind.m - kind.n}, "
                       f"got {cfg.prune.rounds}")
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  pruned = pruned_leaves(setup.rates, setup.roles, chain)
  for (path, leaf), rate, on in zip(flat, jax.tree.leaves(setup.rates), pruned):
    if not on:
      continue
    name = masks.path_str(path)
    kind.check(tuple(leaf.shape), name)
    if kind.kind == "n:m":
      continue
    groups = np.array([kind.num_groups(tuple(leaf.shape))])
    for r in range(1, cfg.prune.rounds + 1):
      groups = groups - pruning.exact_round(rate, groups)
      if groups[0] < 1:
        raise PruningError(f"pruning {name} by {kind} at rate {rate:g} leaves none after round {r} "
                           f"of {cfg.prune.rounds}")


def prune_trials(request) -> PyTree:
  """Each trial's next mask ([trials, ...]): its trained ticket pruned by the run's structure."""
  setup, lineage, cfg = request.setup, request.lineage, request.setup.cfg
  one = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape[1:], m.dtype), lineage.mask)
  kind, chain = plan(cfg, one)
  score = pruning.score_trees(request.trained, lineage.init_params, lineage.mask,
                              scores.get(cfg.prune.score), lineup.trial_keys(request), ticket_axes=1)
  return next_masks(kind, chain, score, lineage.mask, setup.rates, setup.roles, request.round_index)


def next_masks(kind: structure.Structure, chain: tuple[int, ...], score: PyTree, mask: PyTree,
               rates: PyTree, roles: PyTree, round_index: int = 0) -> PyTree:
  """One round of IMP by `kind` on stacked masks ([trials, ...]) under stacked `score`s: each
  pruned layer keeps round((1 - rate) * g) of its g live groups (N:M: one weight fewer per group
  than round `round_index` kept), then every dead unit takes its outgoing weights along."""
  leaves, treedef = jax.tree.flatten(mask)
  out = []
  for m, s, rate, on in zip(leaves, jax.tree.leaves(score), jax.tree.leaves(rates),
                            pruned_leaves(rates, roles, chain)):
    if not on:
      out.append(m)
    elif kind.kind == "n:m":  # round r+1 keeps M - (r + 1) of every M
      step = dataclasses.replace(kind, n=kind.m - round_index - 1)
      out.append(jax.vmap(lambda s, m, step=step: step.select(s, m, 0))(s, m))
    else:
      groups = live_groups(kind, np.asarray(m))
      keep = jnp.asarray(groups - pruning.exact_round(rate, groups), jnp.int32)
      out.append(jax.vmap(kind.select)(s, m, keep))
  if chain:
    out = jax.vmap(lambda *ls: tuple(structure.couple_chain(list(ls), chain)))(*out)
  return jax.tree.unflatten(treedef, list(out))
