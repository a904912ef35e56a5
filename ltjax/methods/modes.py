"""The registry of mask-finding modes: how round r+1's mask comes from round r.

A mode is a function `find(request) -> Found`, registered by name with the number of pruned
rounds it makes of a config. The built-in modes (`iterative`, `oneshot`, `at_init`,
`early_bird`) register themselves from their modules; a user's mode registers the same way, and
`prune.mode` names it. Nothing here imports the rest of ltjax, so any layer may look modes up.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

PyTree = Any


class ModeError(ValueError):
  """An unknown or badly registered mode."""


@dataclasses.dataclass(frozen=True)
class Request:
  """What a mode may use to find the next masks, all stacked over trials.

  setup: the run's `ltjax.wiring.Setup` (config, roles, rates, trainer, init function).
  lineage: the `ltjax.lineup.Lineage` after round `round_index` (theta_0, the masks so far).
  trained, trained_model_state: each trial's trained ticket of this round (its line-up rows).
  dataset: the run's dataset (for modes that train or score on data).
  key: this round's scoring key.
  """
  setup: Any
  lineage: Any
  round_index: int
  trained: PyTree
  trained_model_state: PyTree
  dataset: Any
  key: Any


@dataclasses.dataclass(frozen=True)
class Found:
  """The next masks ([trials, ...]), the inverted-score masks where the mode draws them (the
  'inverted' control), and the model-steps of training each trial's mask cost ([trials])."""
  mask: PyTree
  found_after: Any
  inverted: PyTree | None = None


@dataclasses.dataclass(frozen=True)
class Mode:
  find: Callable[[Request], Found]
  pruned_rounds: Callable[[Any], int]   # cfg -> rounds after the dense round 0
  inverts: bool = False                 # draws the inverted-score masks (the 'inverted' control)
  fine_tunes: bool = False              # prune.reset='none' continues its trained tickets
  description: str = ""
  # (setup, round) -> the masks' changes while round r > 0 trains (a `Trainer.mask_updates`:
  # gradual pruning, dynamic sparse training); None where masks change only between rounds.
  trains: Callable[[Any, int], Any] | None = None
  # Config fields the mode's paper sets, used where the config says 'auto' (prune.<field>).
  defaults: dict = dataclasses.field(default_factory=dict)
  # Sparsity types beyond single weights the mode prunes ('units', 'n:m', 'block'; prune.sparsity_type).
  structures: tuple[str, ...] = ()
  # setup -> None: checks against the network's shapes before anything is written (PruningError).
  check: Callable[[Any], None] | None = None
  # Finds its masks from the trained dense weights (one-shot): the lineage keeps them after round 0.
  prunes_dense: bool = False


def by_densities(cfg) -> int:
  """One pruned round per entry of `prune.densities` (one-shot style modes)."""
  return len(cfg.prune.densities)


_MODES: dict[str, Mode] = {}


def register(name: str, find: Callable[[Request], Found] | None = None, *,
             pruned_rounds: Callable[[Any], int] = by_densities, inverts: bool = False,
             fine_tunes: bool = False, trains: Callable[[Any, int], Any] | None = None,
             defaults: dict | None = None, structures: tuple[str, ...] = (),
             check: Callable[[Any], None] | None = None, prunes_dense: bool = False):
  """Register `find` as the mode `name` (also usable as a decorator); returns `find`.
  `prunes_dense`: `request.lineage.dense_params` holds round 0's trained dense net (else theta_0)."""
  def add(find):
    if not callable(find):
      raise ModeError(f"mode {name!r} must be callable, got {type(find).__name__}")
    if trains is not None and not callable(trains):
      raise ModeError(f"mode {name!r}: trains must be callable, got {type(trains).__name__}")
    doc = (find.__doc__ or "").strip().splitlines()
    _MODES[name] = Mode(find, pruned_rounds, inverts, fine_tunes, doc[0] if doc else "", trains,
                        dict(defaults or {}), tuple(structures), check, prunes_dense)
    return find
  return add if find is None else add(find)


def names() -> list[str]:
  return sorted(_MODES)


def get(name: str) -> Mode:
  if name not in _MODES:
    raise ModeError(f"unknown prune.mode {name!r}; known: {', '.join(names())}")
  return _MODES[name]
