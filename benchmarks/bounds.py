r"""What bounds LeNet training throughput on CPU: the step's parts, one ticket per core.

  python -m benchmarks.bounds                 # K tickets over the cores, 100-step scans

Times, with the tickets laid over every CPU core as devices (one ticket at a time per core), a
scan of steps on a fixed batch for steps of decreasing work: the real masked Adam step, Adam
without masks, a plain SGD step without masks, and forward+backward alone (the gradient is
reduced to a scalar so nothing is dead code, and the input varies with the step so nothing is
hoisted). FLOPs of each are counted from shapes (`benchmarks.flops`); the ceiling is the 2048^2
float32 matmul timed next to each measurement (every core), and once pinned to one core.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import optax
from absl import flags

from benchmarks import common, flops
from experiments import cli
from ltjax import models
from ltjax.engine import parallel, runtime, train

_TICKETS = flags.DEFINE_integer("tickets", 16, "Tickets K.")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per timed scan.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls (median).")
for _name in ("tickets", "steps", "repeats"):
  cli.check_flag(_name, lambda v: v >= 1, f"{_name} must be >= 1")


def variants(trainer):
  def masked_adam(state, x, y, s):
    return trainer.train_step(state, x, y, s)

  def adam_unmasked(state, x, y, s):
    loss, g = jax.value_and_grad(lambda p: train.cross_entropy(
        trainer.logits(p, {}, x, True)[0], y))(state.params)
    updates, opt_state = trainer.tx.update(g, state.opt_state, state.params)
    return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state), loss

  def sgd_unmasked(state, x, y, s):
    loss, g = jax.value_and_grad(lambda p: train.cross_entropy(
        trainer.logits(p, {}, x, True)[0], y))(state.params)
    return state.replace(params=jax.tree.map(lambda p, d: p - 0.01 * d, state.params, g)), loss

  def forward_backward(state, x, y, s):
    # The input depends on the step (by a factor XLA cannot fold), or the loop-invariant pass
    # would be hoisted out of the scan.
    x = x * (1.0 + s.astype(jnp.float32) * 1e-30)
    loss, g = jax.value_and_grad(lambda p: train.cross_entropy(
        trainer.logits(p, {}, x, True)[0], y))(state.params)
    return state, loss + sum(jnp.sum(v) for v in jax.tree.leaves(g)) * 0.0

  return {"masked_adam": masked_adam, "adam_unmasked": adam_unmasked, "sgd_unmasked": sgd_unmasked,
          "forward_backward": forward_backward}


def one_core_ceiling() -> float:
  code = ("from benchmarks import common; print(common.MatmulCeiling().flops_per_s(7))")
  out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  return float(out.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if _TICKETS.value < 1 or _STEPS.value < 1 or _REPEATS.value < 1:
    cli.fail("--tickets, --steps and --repeats must be >= 1")
  cores = runtime.start(-1, compilation_cache=False)
  spec = models.get("lenet_300_100")
  module = spec.build(10)
  ds = common.fake_dataset((28, 28, 1))
  base = train.Trainer(module, optax.adam(1e-3), batch_size=60, ticket_batch=1)
  states, _ = common.stacked_states(base, spec, module, ds, _TICKETS.value, density=0.2)
  layout = parallel.make_layout("auto", _TICKETS.value, 60, True)
  x, y = ds.normalize(ds.train.images[:60]), ds.train.labels[:60]
  ceiling = common.MatmulCeiling()
  per_core = one_core_ceiling()
  common.emit({"bench": "bounds_ceiling", "all_cores_flops": ceiling.flops_per_s(7),
               "one_core_flops": per_core, "cores": cores, **common.device_info()})
  one = parallel.take(states, 0)
  for name, step in variants(base).items():
    step_flops = flops.shape_flops(step, one, x, y, 0)

    def scan(state, x, y, step=step):
      return jax.lax.scan(lambda st, s: step(st, x, y, s), state, jnp.arange(_STEPS.value))

    run = jax.jit(layout.map(scan, (0, None, None), 1))
    holder = {"s": layout.place(layout.pad(states))}

    def call(run=run):
      holder["s"], losses = run(holder["s"], x, y)
      return losses

    seconds, ceil, _ = common.interleaved(call, ceiling, _REPEATS.value)
    achieved = layout.padded(_TICKETS.value) * _STEPS.value * step_flops / seconds
    common.emit({"bench": "bounds", "step": name, "tickets": _TICKETS.value,
                 "layout": layout.describe(), "flops_per_step": step_flops,
                 "model_steps_per_s": _TICKETS.value * _STEPS.value / seconds,
                 "fraction_of_ceiling": achieved / ceil,
                 "per_core_fraction_of_one_core_ceiling": achieved / layout.ticket_shards / per_core})


if __name__ == "__main__":
  cli.run(main)
