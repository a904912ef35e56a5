r"""What tickets on schedules of their own cost: Scratch-B beside its ticket, rewind points side by side.

  python -m benchmarks.own_schedules                                   # LeNet and Conv-2, 6 tickets
  python -m benchmarks.own_schedules --models=conv2 --shape=16 --steps=40 --eval_every=10

Trains the same K tickets for `--steps` (validating every `--eval_every`) three ways, as a round
does (`Trainer.train`): on the run's schedule; each on a schedule of its own that spans the whole
run; and with half of them stopping halfway (Scratch-B's ticket and reinit beside it), every
other one (`half_idle`), or the first half (`grouped`, as a round lists them: the controls after
the tickets), the latter also in stacked order over the devices (`grouped_stacked`). Prints one
JSON line per (model, layout) with the median seconds of each and four ratios:
`own_over_run` should be about 1 (a per-ticket schedule must not slow training: it was 35x for
Conv-2 unrolled on the CPU while the train step branched), and `half_idle_over_run` below 1 where
tickets run one at a time (idle intervals are skipped) and about 1 elsewhere (stepped and discarded).
`grouped_over_half_idle` should be about 1 (the devices get even shares, `Trainer.shard_order`);
`stacked_over_grouped` is what that saves, above 1 on a mesh where tickets run one at a time.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from absl import flags

from benchmarks import common
from experiments import cli
from ltjax import models, wiring
from ltjax.engine import parallel, runtime, train

_MODELS = flags.DEFINE_list("models", ["lenet_300_100", "conv2"], "Registered model names.")
_TICKETS = flags.DEFINE_integer("tickets", 6, "Tickets in the program (half stop halfway in the third lineup).")
_STEPS = flags.DEFINE_integer("steps", 400, "Training steps per call.")
_EVAL = flags.DEFINE_integer("eval_every", 100, "Validation interval (steps).")
_BATCH = flags.DEFINE_integer("batch_size", 60, "Batch size.")
_SHAPE = flags.DEFINE_integer("shape", 0, "Image side for CIFAR-10 nets (0: 32); smaller is faster on a CPU.")
_LAYOUTS = flags.DEFINE_list("layouts", ["auto:1"], "MESH:TICKET_BATCH, as in benchmarks.throughput.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per lineup (median).")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", -1, "CPU cores as devices (-1: one per core).")
cli.check_flag("models", lambda v: v and all(m in models.names() for m in v),
               f"models must be among {', '.join(models.names())}")
cli.check_flag("tickets", lambda v: v >= 2, "tickets must be >= 2")
cli.check_flag("steps", lambda v: v >= 2, "steps must be >= 2")
cli.check_flag("eval_every", lambda v: v >= 1, "eval_every must be >= 1")
cli.check_flag("batch_size", lambda v: v >= 1, "batch_size must be >= 1")
cli.check_flag("shape", lambda v: v >= 0, "shape must be >= 0")
cli.check_flag("layouts", lambda v: v and all(common.layout_ok(x) for x in v),
               "layouts must be MESH:TICKET_BATCH, e.g. single:2 or auto:1")
cli.check_flag("repeats", lambda v: v >= 1, "repeats must be >= 1")
cli.check_flag("cpu_devices", lambda v: v == -1 or v >= 1, "cpu_devices must be -1 (auto) or >= 1")


def measure(model_name: str, mesh: str, ticket_batch: int | None) -> dict:
  spec = models.get(model_name)
  module = spec.build(10)
  side = _SHAPE.value or 32
  ds = common.fake_dataset(common.INPUT_SHAPES.get(model_name, (side, side, 3)))
  k, steps = _TICKETS.value, _STEPS.value
  trainer = train.Trainer(module, optax.adam(1e-3), batch_size=_BATCH.value, ticket_batch=ticket_batch)
  states, roles = common.stacked_states(trainer, spec, module, ds, k, 0.2)
  layout = parallel.make_layout(mesh, k, _BATCH.value, splittable=not jax.tree.leaves(states.model_state))
  trainer = dataclasses.replace(trainer, unroll=wiring.unroll(-1, roles), layout=layout)
  grouped = [steps // 2 if i < k // 2 else steps for i in range(k)]  # as a round lists them
  lasts = {"run": None, "own": [steps] * k, "half_idle": [steps // 2 if i % 2 else steps for i in range(k)],
           "grouped": grouped, "grouped_stacked": grouped}
  stacked = dataclasses.replace(trainer, balance_shards=False)

  def once(name) -> float:
    last = lasts[name]
    schedule = () if last is None else (jnp.ones(k, jnp.float32), jnp.asarray(last, jnp.int32))
    fresh = dataclasses.replace(jax.tree.map(jnp.copy, states), schedule=schedule)  # train donates
    runner = stacked if name == "grouped_stacked" else trainer
    jax.block_until_ready(fresh)
    t0 = time.perf_counter()
    jax.block_until_ready(runner.train(fresh, ds, steps, _EVAL.value)[0].params)
    return time.perf_counter() - t0

  for name in lasts:
    once(name)  # compile
  seconds = {name: [] for name in lasts}
  for rep in range(_REPEATS.value):  # alternated: each lineup goes first in turn
    for name in common.rotated(list(lasts), rep):
      seconds[name].append(once(name))
  med = {name: statistics.median(v) for name, v in seconds.items()}
  return {"bench": "own_schedules", "model": model_name, "tickets": k, "steps": steps,
          "eval_every": _EVAL.value, "layout": layout.describe(), "ticket_batch": ticket_batch or 0,
          "unroll": trainer.unroll, "branches_per_ticket": trainer.branches_per_ticket,
          **{f"{n}_seconds": s for n, s in med.items()},
          "own_over_run": med["own"] / med["run"], "half_idle_over_run": med["half_idle"] / med["run"],
          "grouped_over_half_idle": med["grouped"] / med["half_idle"],
          "stacked_over_grouped": med["grouped_stacked"] / med["grouped"],
          **common.device_info()}


def main(argv):
  del argv
  try:
    runtime.start(_CPU_DEVICES.value, compilation_cache=False)
    for model_name in _MODELS.value:
      for mesh, tb in common.parse_layouts(_LAYOUTS.value):
        common.emit(measure(model_name, mesh, tb))
  except parallel.LayoutError as e:
    cli.fail(e)


if __name__ == "__main__":
  cli.run(main)
