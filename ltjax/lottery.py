"""The lottery-ticket experiment: rounds of training every trial's ticket beside its controls, as
one compiled program, then finding the next masks.

    lineage = theta_0 and the dense masks of `trials` independent trials
    for r in rounds:
        states  = start_states(line-up of round r)   # tickets and controls (ltjax.lineup)
        trained = train(states)                      # K tickets, one program, early stop by val loss
        masks   = mode.find(trained, lineage)        # IMP, one-shot, at init, early-bird, yours
        lineage = lineage with masks (and theta_k once rewinding, or the trained ticket to fine-tune)

`prune.mode` names a mode of `ltjax.methods.modes`; the line-up and start states are
`ltjax.lineup`'s, the config -> pieces wiring `ltjax.wiring`'s, the twins' paths
`ltjax.stability`'s. Persistence (records, checkpoints, resume) is the caller's, through a
`RoundSink`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import lineup, stability
from ltjax.core import masks, pruning, tickets
from ltjax.data import Dataset
from ltjax.engine import oneoff, parallel, train
# Importing the methods registers their modes.
from ltjax.methods import (at_init, dynamic, early_bird, given, gradual, imp, modes, oneshot,  # noqa: F401
                           straight_through)
from ltjax.wiring import Setup

PyTree = Any


@dataclasses.dataclass
class RoundResult:
  """A round's outcome on the host (numpy), with everything the records and the next round need."""
  round: int
  ids: list[lineup.TicketId]
  curves: train.Curves                 # [num_evals, K]
  early_stop_step: np.ndarray          # [K]; -1 if never finite
  val_loss: np.ndarray                 # at early stop
  val_accuracy: np.ndarray
  test_accuracy: np.ndarray            # at early stop (evaluated once, on the carried best params)
  final_test_accuracy: np.ndarray
  diverged: np.ndarray
  density: np.ndarray                  # [K] fraction of prunable weights remaining
  finding_steps: np.ndarray            # [K] model-steps of training spent finding the ticket's mask
  layer_density: dict[str, np.ndarray]
  final_params: PyTree                 # stacked; prunes the next mask
  masks: PyTree
  steps_trained: np.ndarray            # [K]
  path_error: np.ndarray               # [K, points] ticket rows: test error on the path to the twin
  seconds: float


class RoundSink(Protocol):
  """Where a run reports. `progress` is called after every compiled call of a round with the step
  reached, a `snapshot()` of (states, early-stop tracker) for mid-round checkpoints, and the
  round's curves so far; `round_done` once per finished round with its result and the lineage
  the next round starts from (persist both there to make the run resumable)."""

  def progress(self, round_index: int, step: int,
               snapshot: Callable[[], tuple[train.TrainState, train.EarlyStop]],
               curves: train.Curves) -> None: ...

  def round_done(self, result: RoundResult, lineage: lineup.Lineage) -> None: ...


def run_rounds(setup: Setup, dataset: Dataset, sink: RoundSink | None = None,
               lineage: lineup.Lineage | None = None, resume=None) -> lineup.Lineage:
  """Train every remaining round, from `lineage` (default: a fresh start) to the last."""
  lineage = lineup.initial_lineage(setup) if lineage is None else lineage
  while lineage.round < lineup.num_rounds(setup.cfg):
    result, next_lineage = train_round(setup, lineage, dataset, sink, resume)
    resume = None
    if sink is not None:
      sink.round_done(result, next_lineage)
    lineage = next_lineage
  return lineage


def train_round(setup: Setup, lineage: lineup.Lineage, dataset: Dataset, sink: RoundSink | None = None,
                resume: tuple[int, train.TrainState, train.EarlyStop, train.Curves] | None = None
                ) -> tuple[RoundResult, lineup.Lineage]:
  """Train one round's line-up as one program; returns its result and the lineage for the next."""
  cfg, trainer, r = setup.cfg, setup.trainer, lineage.round
  trains = modes.get(cfg.prune.mode).trains
  if trains is not None and r > 0:  # the method changes the masks while the round trains
    trainer = dataclasses.replace(trainer, mask_updates=trains(setup, r))
  ids = lineup.lineup(cfg, r)
  t0 = time.perf_counter()
  first_steps = lineup.first_steps(setup, ids, r)  # a pruned round starts at the rewind step (0 with scratch)
  start = int(first_steps.min())
  if resume is not None:
    start, states, tracker, prior = resume
  else:
    states, tracker, prior = lineup.start_states(setup, lineage, ids), None, None
  callback = None
  if sink is not None:
    callback = lambda step, snapshot, c: sink.progress(  # noqa: E731
        r, step, snapshot, c if prior is None else train.concat_curves([prior, c]))
  length = lineup.round_steps(cfg, r)
  run = lambda st, tr, a, b: trainer.train(  # noqa: E731
      st, dataset, length, cfg.train.eval_every, tracker=tr, start_step=a, stop_step=b,
      intervals_per_call=cfg.execution.intervals_per_call, callback=callback)
  # The test evaluation's program compiles beside the training program's (another core).
  test_program = trainer.evaluate_ahead(states, dataset, dataset.test)
  ticket_rows = jnp.asarray(lineup.rows(ids, tickets.TICKET))
  rewinds = lineup.rewind_steps(setup)
  # Round 0 trains to each rewind step k (one, or several for points side by side), saves theta_k
  # as the start of the lineages that rewind to k and forks their twins there.
  for k in sorted({k for k in rewinds.tolist() if r == 0 and k > start}):
    states, tracker, c = run(states, tracker, start, k)
    prior = c if prior is None else train.concat_curves([prior, c])
    mine = rewinds == k
    states = stability.fork_twins(states, ids, lineages=mine)
    lineage = lineage.replace(**rewound_starts(lineage, states, ticket_rows, mine))
    start = k
  states, tracker, curves = run(states, tracker, start, length)
  if prior is not None:
    curves = train.concat_curves([prior, curves])
  # The best step's weights are its network as it was validated (masked then, under that step's
  # mask): a mask that moved later (SET, RigL) must not be laid over them.
  unmasked = jax.tree.map(lambda m: np.ones(m.shape, bool), states.mask)  # (host arrays: no eager op compiles)
  if test_program is not None:
    test_program.wait()
  _, test_acc = trainer.evaluate_many(tracker.params, unmasked, tracker.model_state, dataset,
                                      dataset.test)
  _, final_acc = trainer.evaluate_many(states.params, states.mask, states.model_state, dataset,
                                       dataset.test)
  density, layer_density = masks.stacked_densities(states.mask, setup.roles)
  result = RoundResult(
      round=r, ids=ids, curves=train.to_numpy(curves), early_stop_step=np.asarray(tracker.step),
      val_loss=np.asarray(tracker.loss), val_accuracy=np.asarray(tracker.accuracy),
      test_accuracy=np.asarray(test_acc), final_test_accuracy=np.asarray(final_acc),
      diverged=np.asarray(tracker.diverged), density=density, layer_density=layer_density,
      finding_steps=np.asarray(lineage.found_after)[[tid.trial for tid in ids]],
      final_params=trainer.network(states), masks=states.mask,
      steps_trained=lineup.last_steps(setup, ids, r) - first_steps,
      path_error=stability.twin_paths(trainer, cfg.stability.points, ids, states, dataset),
      seconds=time.perf_counter() - t0)
  trained = parallel.take(states.params, ticket_rows)
  trained_state = parallel.take(states.model_state, ticket_rows)
  lost = np.asarray(tracker.diverged)[np.asarray(ticket_rows)]
  if lost.any():  # no finite weights to prune at the end: the lineage goes on from its best validated ones
    trained, trained_state = _where_lineages(jnp.asarray(~lost), (trained, trained_state), (
        parallel.take(tracker.params, ticket_rows), parallel.take(tracker.model_state, ticket_rows)))
  if r == 0 and modes.get(cfg.prune.mode).prunes_dense:
    lineage = lineage.replace(dense_params=trained)
  if r + 1 < lineup.num_rounds(cfg):
    lineage = next_masks(setup, lineage, r, trained, trained_state, dataset)
  elif prunes_past_last_round(cfg):
    try:
      lineage = next_masks(setup, lineage, r, trained, trained_state, dataset)
    except pruning.PruningError:
      pass  # a cut that would empty a layer: this run ends here (`check_continues` says so)
  if cfg.prune.reset == "none":  # fine-tuning: the next round continues from the trained weights
    lineage = lineage.replace(start_params=trained, start_model_state=trained_state)
  return result, lineage.replace(round=r + 1)


def rewound_starts(lineage: lineup.Lineage, states: train.TrainState, ticket_rows, mine: np.ndarray) -> dict:
  """The lineage's start (params, model state) with the tickets' current ones for lineages
  `mine` ([trials] bool): theta_k saved at their rewind step."""
  params = parallel.take(states.params, ticket_rows)
  model_state = parallel.take(states.model_state, ticket_rows)
  if not mine.all():
    params, model_state = _where_lineages(jnp.asarray(mine), (params, model_state),
                                          (lineage.start_params, lineage.start_model_state))
  return {"start_params": params, "start_model_state": model_state}


@oneoff.jit
def _where_lineages(mine, new, old):
  pick = lambda n, o: jnp.where(mine.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)  # noqa: E731
  return jax.tree.map(pick, new, old)


def prunes_past_last_round(cfg) -> bool:
  """IMP finds the masks of a round past its last one too (a magnitude cut, cheap beside training):
  its rounds do not depend on how many follow, so a finished run can be given more rounds and
  continue from the lineage it left (`runs.workdir`). Not after a dense-only run (rounds=0), whose
  cut would compile a program for nothing in the one-ticket case the benchmarks time."""
  return cfg.prune.mode == "iterative" and cfg.prune.rounds > 0


def next_masks(setup: Setup, lineage: lineup.Lineage, round_index: int, trained: PyTree,
               trained_state: PyTree, dataset: Dataset) -> lineup.Lineage:
  """The lineage with the next round's masks, found by the config's mode from each trial's
  trained ticket (`trained`, [trials, ...]) of round `round_index`."""
  cfg = setup.cfg
  found = modes.get(cfg.prune.mode).find(modes.Request(
      setup, lineage, round_index, trained, trained_state, dataset,
      lineup.key_for(cfg.seed, lineup.PURPOSE["score"], round_index)))
  return lineage.replace(mask=found.mask, found_after=found.found_after,
                         inverted_mask=found.mask if found.inverted is None else found.inverted)
