r"""Training throughput of masked tickets: model-steps/s and fraction of the matmul ceiling.

  python -m benchmarks.throughput                                   # LeNet-300-100, K = 1, 4, 8, 16
  python -m benchmarks.throughput --models=lenet_300_100,conv2 --tickets=1,4 --layouts=single:1,auto:1

Prints one JSON line per (model, K, layout) plus one for the ceiling. A layout is MESH:TICKET_BATCH:
MESH as `execution.mesh` ('single' = one device, 'auto' = every device), TICKET_BATCH the strategy on
each device (0 = vmap all, 1 = sequential, b = chunks of b). On CPU the cores are devices
(`--cpu_devices`), so one run compares one device using both cores against one core per device.
A step's FLOPs are counted from shapes (`benchmarks.flops`, the same on every device) of the
single-ticket train step; "fraction_of_ceiling" is achieved FLOP/s over the float32 matmul FLOP/s
of this device, each training timing interleaved
with a ceiling timing (medians of both).
`--pipeline` also times the same scan on one fixed batch, so the data gathering overhead shows.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from absl import flags

from benchmarks import common, flops
from experiments import cli
from ltjax import models, wiring
from ltjax.engine import parallel, runtime, train

_MODELS = flags.DEFINE_list("models", ["lenet_300_100"], "Registered model names.")
_TICKETS = flags.DEFINE_list("tickets", ["1", "4", "8", "16"], "Numbers of stacked tickets K.")
_LAYOUTS = flags.DEFINE_list("layouts", ["single:0", "single:2", "auto:1"],
                             "MESH:TICKET_BATCH pairs to compare (see the module doc).")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", -1, "CPU cores as devices (-1: one per core).")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per timed compiled call (one lax.scan).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per configuration (median reported).")
_BATCH = flags.DEFINE_integer("batch_size", 60, "Training batch size.")
_PIPELINE = flags.DEFINE_bool("pipeline", False, "Also time a fixed batch to isolate data gathering.")
_UNROLL = flags.DEFINE_integer("unroll", -1, "Unroll device loops: -1 auto (conv nets on CPU), 0, 1.")
_DENSITY = flags.DEFINE_float("density", 0.2, "Fraction of weights the masks keep (random masks).")
cli.check_flag("models", lambda v: v and all(m in models.names() for m in v),
               f"models must be among {', '.join(models.names())}")
cli.check_flag("tickets", cli.is_int_list, "tickets must be integers >= 1")
cli.check_flag("layouts", lambda v: v and all(common.layout_ok(x) for x in v),
               "layouts must be MESH:TICKET_BATCH, e.g. single:2 or auto:1")
cli.check_flag("cpu_devices", lambda v: v == -1 or v >= 1, "cpu_devices must be -1 (auto) or >= 1")
for _name in ("steps", "repeats", "batch_size"):
  cli.check_flag(_name, lambda v: v >= 1, f"{_name} must be >= 1")
cli.check_flag("unroll", lambda v: v in (-1, 0, 1), "unroll must be -1, 0 or 1")
cli.check_flag("density", lambda v: 0 < v <= 1, "density must be in (0, 1]")


def fixed_batch_scan(trainer, ticket_batch):
  """The same loops (tickets outside, steps inside) on one fixed batch: no gathering, no shuffles."""

  @jax.jit
  def run(states, images, labels):
    def one(state):
      return jax.lax.scan(lambda st, s: trainer.train_step(st, images, labels, s), state,
                          jnp.arange(_STEPS.value))
    return parallel.ticket_map(one, (0,), ticket_batch)(states)
  return run


def measure(model_name, k, mesh, ticket_batch, ceiling):
  spec = models.get(model_name)
  module = spec.build(10)
  ds = common.fake_dataset(common.INPUT_SHAPES.get(model_name, (32, 32, 3)))
  trainer = train.Trainer(module, optax.adam(1e-3), batch_size=_BATCH.value, ticket_batch=ticket_batch)
  states, roles = common.stacked_states(trainer, spec, module, ds, k, _DENSITY.value)
  layout = parallel.make_layout(mesh, k, _BATCH.value, splittable=not jax.tree.leaves(states.model_state))
  unroll = wiring.unroll(_UNROLL.value, roles)  # auto: conv nets on CPU (see ltjax.engine.programs)
  trainer = dataclasses.replace(trainer, unroll=unroll, layout=layout)
  one = parallel.take(states, 0)
  images = ds.normalize(ds.train.images[:_BATCH.value])
  labels = ds.train.labels[:_BATCH.value]
  flops_step = flops.shape_flops(dataclasses.replace(trainer, layout=parallel.Layout()).train_step,
                                 one, images, labels, 0)
  fixed_states = jax.tree.map(jnp.copy, states) if _PIPELINE.value else None
  call = common.training_call(trainer, states, ds, _STEPS.value)  # donates `states`
  seconds, ceiling_flops, _ = common.interleaved(call, ceiling, _REPEATS.value)
  model_steps = k * _STEPS.value / seconds
  record = {"bench": "throughput", "model": model_name, "tickets": k, "mesh": mesh,
            "layout": layout.describe(), "ticket_batch": ticket_batch or 0, "unroll": unroll,
            "batch_size": _BATCH.value, "steps_per_call": _STEPS.value, "seconds_per_call": seconds,
            "model_steps_per_s": model_steps, "flops_per_step": flops_step,
            "achieved_flops": model_steps * flops_step, "ceiling_flops": ceiling_flops,
            "fraction_of_ceiling": model_steps * flops_step / ceiling_flops, **common.device_info()}
  if _PIPELINE.value and not unroll and layout.mesh is None:
    run = fixed_batch_scan(trainer, ticket_batch)  # same steps, no gathering
    holder2 = {"states": fixed_states}

    def call_fixed():
      holder2["states"], losses = run(holder2["states"], images, labels)
      return losses

    fixed = common.median_seconds(call_fixed, _REPEATS.value)
    record.update(fixed_batch_seconds_per_call=fixed, pipeline_overhead=seconds / fixed - 1)
  record.update(common.peak_memory_mb())
  return record


def main(argv):
  del argv
  layouts = common.parse_layouts(_LAYOUTS.value)
  try:
    runtime.start(_CPU_DEVICES.value, compilation_cache=False)
  except parallel.LayoutError as e:
    cli.fail(e)
  ceiling = common.MatmulCeiling()
  common.emit({"bench": "matmul_ceiling", "matmul_n": ceiling.n,
               "ceiling_flops": ceiling.flops_per_s(7), **common.device_info()})
  for model_name in _MODELS.value:
    for mesh, tb in layouts:
      for k in map(int, _TICKETS.value):
        if tb and tb > 1 and tb >= k:
          continue  # a chunk as large as K is plain vmap
        try:
          common.emit(measure(model_name, k, mesh, tb, ceiling))
        except parallel.LayoutError as e:
          cli.fail(e)


if __name__ == "__main__":
  cli.run(main)
