r"""End-to-end cost of one lottery round versus pure training at the same throughput.

  python -m benchmarks.round                          # LeNet-300-100: 5 trials + reinit + random mask
  python -m benchmarks.round --steps=50000 --rounds=16 --full   # the paper's whole schedule (GPU)

Times a pruned round (15 tickets, 5,000 steps, validation every 100 steps, test eval at the
early-stop point, result bookkeeping) through `lottery.train_round`, and pure training of the same
15 tickets for the same steps through `Trainer.train_steps` (no evaluation), in the same run.
"overhead" = round / pure - 1 covers evaluation, early-stop tracking, data and bookkeeping.
With --full, runs the whole experiment (all rounds) via `experiment.train_and_evaluate` in a
temporary workdir and reports its wall time.
"""

from __future__ import annotations

import tempfile
import time

import jax.numpy as jnp
from absl import app, flags

from benchmarks import common
from ltjax import configs, experiment, lottery

_PRESET = flags.DEFINE_string("preset", "lenet_mnist", "Paper preset.")
_STEPS = flags.DEFINE_integer("steps", 5000, "Training steps per round.")
_EVAL = flags.DEFINE_integer("eval_every", 100, "Validation interval.")
_TRIALS = flags.DEFINE_integer("trials", 5, "Trials (each adds a ticket, a reinit and a random mask).")
_ROUNDS = flags.DEFINE_integer("rounds", 16, "Pruning rounds for --full.")
_FULL = flags.DEFINE_bool("full", False, "Also run the whole experiment end to end.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default $LTJAX_DATA_DIR).")


def main(argv):
  del argv
  cfg = configs.get(_PRESET.value)
  cfg.train.steps, cfg.train.eval_every, cfg.trials = _STEPS.value, _EVAL.value, _TRIALS.value
  cfg.prune.rounds = _ROUNDS.value
  if _DATA_DIR.value:
    cfg.data_dir = _DATA_DIR.value
  dataset = experiment.load_dataset(cfg)
  setup = lottery.build(cfg, dataset)
  lineage = lottery.initial_lineage(setup)
  # A pruned round (round 1) has the full line-up: tickets, reinits and random masks.
  lineage = lineage.replace(round=1, mask=lottery.next_mask(
      setup, lineage, lottery.lineup(cfg, 0), lineage.init_params, 0))
  ids = lottery.lineup(cfg, 1)
  timings = []
  for _ in range(2):  # the first includes compilation
    t0 = time.perf_counter()
    result, _ = lottery.train_round(setup, lineage, dataset)
    timings.append(time.perf_counter() - t0)
  states = lottery.start_states(setup, lineage, ids)
  holder = {"s": states}

  def pure():
    holder["s"], losses = setup.trainer.train_steps(holder["s"], dataset, jnp.int32(0), cfg.train.steps)
    return losses

  pure_s = common.median_seconds(pure, 1)
  record = {"bench": "round", "preset": cfg.name, "model": cfg.model, "tickets": len(ids),
            "steps": cfg.train.steps, "eval_every": cfg.train.eval_every,
            "ticket_batch": setup.trainer.ticket_batch or 0,
            "round_seconds_first": timings[0], "round_seconds": timings[1],
            "pure_training_seconds": pure_s, "overhead": timings[1] / pure_s - 1,
            "model_steps_per_s_round": len(ids) * cfg.train.steps / timings[1],
            **common.device_info(), **common.peak_memory_mb()}
  common.emit(record)
  if _FULL.value:
    with tempfile.TemporaryDirectory() as workdir:
      t0 = time.perf_counter()
      experiment.train_and_evaluate(cfg, workdir, log=lambda _: None)
      common.emit({"bench": "full_experiment", "preset": cfg.name, "rounds": cfg.prune.rounds,
                   "steps": cfg.train.steps, "trials": cfg.trials,
                   "wall_seconds": time.perf_counter() - t0, **common.device_info()})


if __name__ == "__main__":
  app.run(main)
