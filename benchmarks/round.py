r"""End-to-end cost of one lottery round, per ticket layout, in one run.

  python -m benchmarks.round --preset=lenet_quick --trials=5 --steps=5000      # 15 tickets
  python -m benchmarks.round --layouts=single,auto                              # today's vs the mesh
  python -m benchmarks.round --steps=50000 --rounds=16 --full                   # the paper's schedule

For each layout (`execution.mesh`: 'single' is the one-device program, 'auto' spreads the
tickets over every device; on CPU the cores are devices) it times a pruned round (tickets,
reinits, random masks; validation every `eval_every` steps; test evaluation at the early-stop
point) through `lottery.train_round`, and pure training of the same tickets for the same steps
(no evaluation). It reports the round's FLOPs counted honestly — training steps, every
validation pass and the two test passes, each counted from shapes (`benchmarks.flops`) — as a fraction of the
matmul ceiling timed next to it, and validation's own throughput against training's.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
from absl import flags

from benchmarks import common, flops
from experiments import cli
from ltjax import configs, lineup, lottery, wiring
from ltjax.engine import parallel, programs, runtime
from ltjax.runs import experiment

_PRESET = flags.DEFINE_string("preset", "lenet_mnist", "Paper preset.")
_STEPS = flags.DEFINE_integer("steps", 5000, "Training steps per round.")
_EVAL = flags.DEFINE_integer("eval_every", 100, "Validation interval.")
_TRIALS = flags.DEFINE_integer("trials", 5, "Trials (each adds a ticket, its reinits and a random mask).")
_ROUNDS = flags.DEFINE_integer("rounds", 16, "Pruning rounds for --full.")
_LAYOUTS = flags.DEFINE_list("layouts", ["single", "auto"], "execution.mesh settings to compare.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", -1, "CPU cores as devices (-1: one per core).")
_FULL = flags.DEFINE_bool("full", False, "Also run the whole experiment end to end (last layout).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default $LTJAX_DATA_DIR).")
cli.check_flag("preset", lambda v: v in configs.available(),
               f"preset must be one of {', '.join(configs.available())}")
for _name in ("steps", "eval_every", "trials"):
  cli.check_flag(_name, lambda v: v >= 1, f"{_name} must be >= 1")
cli.check_flag("rounds", lambda v: v >= 0, "rounds must be >= 0")
cli.check_flag("layouts", lambda v: v and all(parallel.parse_mesh(x) or True for x in v),
               "layouts must be execution.mesh settings: auto, single, T or TxB")
cli.check_flag("cpu_devices", lambda v: v == -1 or v >= 1, "cpu_devices must be -1 (auto) or >= 1")
cli.check_flag("data_dir", lambda v: v is None or os.path.isdir(os.path.expanduser(v)),
               "data_dir must be an existing directory")
flags.register_multi_flags_validator(["steps", "eval_every"], lambda f: f["steps"] >= f["eval_every"],
                                     message="steps must be >= eval_every")


def flop_counts(setup, dataset):
  """FLOPs of one training step, one validation pass and one test pass of one ticket, counted
  from shapes (`benchmarks.flops`: the same count on every device)."""
  one = dataclasses.replace(setup.trainer, layout=parallel.Layout())
  params, model_state = setup.init_fn(jax.random.key(0))
  state = one.init_state(params, jax.tree.map(lambda p: jnp.ones(p.shape, bool), params),
                         model_state, jax.random.key(0))
  images = dataset.normalize(dataset.train.images[:one.batch_size])
  step = flops.shape_flops(one.train_step, state, images, dataset.train.labels[:one.batch_size], 0)
  evaluate = lambda p, ms, split: programs.evaluate(one, p, ms, dataset, split)  # noqa: E731
  return (step, flops.shape_flops(evaluate, params, model_state, dataset.val),
          flops.shape_flops(evaluate, params, model_state, dataset.test))


def measure(cfg, dataset, ceiling):
  setup = wiring.build(cfg, dataset)
  dataset = setup.trainer.layout.replicate(dataset)
  lineage = lineup.initial_lineage(setup)
  # A pruned round (round 1) has the full line-up: tickets, reinits and random masks.
  lineage = lottery.next_masks(setup, lineage, 0, lineage.init_params, lineage.init_model_state,
                               dataset).replace(round=1)
  ids = lineup.lineup(cfg, 1)
  k = len(ids)
  t0 = time.perf_counter()
  lottery.train_round(setup, lineage, dataset)  # includes compilation
  first = time.perf_counter() - t0
  timings, ceilings = [], []
  for _ in range(2):
    ceilings.append(ceiling.flops_per_s(3))
    t0 = time.perf_counter()
    lottery.train_round(setup, lineage, dataset)
    timings.append(time.perf_counter() - t0)
  ceilings.append(ceiling.flops_per_s(3))
  round_s, ceil = min(timings), statistics.median(ceilings)

  trainer = setup.trainer
  pure = common.training_call(trainer, lineup.start_states(setup, lineage, ids), dataset,
                              cfg.train.steps)
  pure_s = common.median_seconds(pure, 1)
  states = lineup.start_states(setup, lineage, ids)
  val_s = common.median_seconds(lambda: trainer.evaluate_many(
      states.params, states.mask, states.model_state, dataset, dataset.val), 3)

  step_f, val_f, test_f = flop_counts(setup, dataset)
  evals = len(range(cfg.train.eval_every, cfg.train.steps + 1, cfg.train.eval_every)) + (
      cfg.train.steps % cfg.train.eval_every != 0)
  train_flops = k * cfg.train.steps * step_f
  round_flops = train_flops + k * (evals * val_f + 2 * test_f)
  return {"bench": "round", "preset": cfg.name, "model": cfg.model, "tickets": k,
          "mesh": cfg.execution.mesh, "layout": trainer.layout.describe(),
          "ticket_batch": trainer.ticket_batch or 0, "steps": cfg.train.steps,
          "eval_every": cfg.train.eval_every, "round_seconds_first": first,
          "round_seconds": round_s, "pure_training_seconds": pure_s,
          "overhead": round_s / pure_s - 1, "model_steps_per_s_round": k * cfg.train.steps / round_s,
          "flops_train_step": step_f, "flops_validation": val_f, "flops_test": test_f,
          "eval_flops_share": 1 - train_flops / round_flops, "ceiling_flops": ceil,
          "round_fraction_of_ceiling": round_flops / round_s / ceil,
          "training_fraction_of_ceiling": train_flops / pure_s / ceil,
          "validation_fraction_of_ceiling": k * val_f / val_s / ceil,
          **common.device_info(), **common.peak_memory_mb()}


def main(argv):
  del argv
  try:
    runtime.start(_CPU_DEVICES.value, compilation_cache=False)
  except parallel.LayoutError as e:
    cli.fail(e)
  base = configs.get(_PRESET.value)
  base.train.steps, base.train.eval_every, base.trials = _STEPS.value, _EVAL.value, _TRIALS.value
  base.prune.rounds = _ROUNDS.value
  if _DATA_DIR.value:
    base.data_dir = _DATA_DIR.value
  try:
    dataset = experiment.load_dataset(base)
  except experiment.UsageError as e:
    cli.fail(e)
  ceiling = common.MatmulCeiling()
  records = []
  for mesh in _LAYOUTS.value:
    cfg = base.copy_and_resolve_references()
    cfg.execution.mesh = mesh
    try:
      records.append(measure(cfg, dataset, ceiling))
    except parallel.LayoutError as e:
      cli.fail(e)
    common.emit(records[-1])
  if len(records) > 1:
    common.emit({"bench": "round_speedup", "layouts": _LAYOUTS.value,
                 "speedup_vs_first": [records[0]["round_seconds"] / r["round_seconds"] for r in records]})
  if _FULL.value:
    with tempfile.TemporaryDirectory() as workdir:
      t0 = time.perf_counter()
      experiment.train_and_evaluate(cfg, workdir, log=lambda _: None)
      common.emit({"bench": "full_experiment", "preset": cfg.name, "rounds": cfg.prune.rounds,
                   "steps": cfg.train.steps, "trials": cfg.trials, "mesh": cfg.execution.mesh,
                   "wall_seconds": time.perf_counter() - t0, **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
