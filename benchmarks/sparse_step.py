r"""What changing masks inside the compiled loop costs: a GMP, SET or RigL step against IMP's
masked step, on steps without an update and amortized over ΔT.

  python -m benchmarks.sparse_step                      # LeNet-300-100, K = 1 and 8, ΔT = 100
  python -m benchmarks.sparse_step --tickets=16 --steps=1000 --every=100,1000

One JSON line per (K, variant): the median seconds per step over `--repeats` calls of `--steps`
steps (variants alternated within each repeat, their order rotated, so drift hits them alike) and `ratio_to_masked`,
the same-run ratio to the masked step. Variants: `masked` (a fixed mask: IMP's step),
`gmp_idle`/`set_idle`/`rigl_idle` (the hook compiled in, no update in the window: the
update-free steps), `gmp_every_N`/`set_every_N`/`rigl_every_N` (an update every N steps). Issue
21's target: the update-free steps at most 1.2x the masked step.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import jax
import optax
from absl import flags

from benchmarks import common
from experiments import cli
from ltjax import models
from ltjax.core import schedules
from ltjax.engine import train
from ltjax.methods import dynamic, gradual

_TICKETS = flags.DEFINE_list("tickets", ["1", "8"], "Numbers of stacked tickets K.")
_STEPS = flags.DEFINE_integer("steps", 500, "Steps per timed compiled call.")
_EVERY = flags.DEFINE_list("every", ["100"], "Update intervals ΔT to time amortized.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per variant (median reported).")
_DENSITY = flags.DEFINE_float("density", 0.2, "Density of the sparse networks.")
cli.check_flag("tickets", cli.is_int_list, "tickets must be integers >= 1")
cli.check_flag("every", cli.is_int_list, "every must be integers >= 1")
cli.check_flag("steps", lambda v: v >= 2, "steps must be >= 2")
cli.check_flag("repeats", lambda v: v >= 1, "repeats must be >= 1")
cli.check_flag("density", lambda v: 0 < v < 1, "density must be in (0, 1)")
NEVER = 10**9  # an update step no window reaches


def _hooks(shapes, roles, steps: int) -> dict:
  """variant name -> Trainer.mask_updates (None: the masked step)."""
  d = _DENSITY.value
  out = {"masked": None}
  gmp = gradual.gradual_pruning(shapes, roles, schedules.Polynomial(0.0, 1 - d, 1, steps, 1), steps)
  set_ = dynamic.dynamic_sparse(shapes, roles, d, "set", schedules.CosineDrop(0.3, steps, 1), steps)
  rigl = dataclasses.replace(set_, growth="gradient")
  for name, hook in (("gmp", gmp), ("set", set_), ("rigl", rigl)):
    out[f"{name}_idle"] = dataclasses.replace(hook, steps=(NEVER,), **_rows(hook, 1))
    for every in map(int, _EVERY.value):
      at = tuple(range(every, steps + 1, every)) or (NEVER,)
      out[f"{name}_every_{every}"] = dataclasses.replace(hook, steps=at, **_rows(hook, len(at)))
  return out


def _rows(hook, n: int):
  table = hook.keep if isinstance(hook, gradual.GradualPruning) else hook.swap
  rows = (table[len(table) // 2],) * n  # a mid-schedule update: counts of a typical size
  return {"keep": rows} if isinstance(hook, gradual.GradualPruning) else {"swap": rows}


def main(argv):
  del argv
  if any(int(e) > _STEPS.value for e in _EVERY.value):
    cli.fail(f"every: each interval must fit in a call of --steps={_STEPS.value} steps, got {','.join(_EVERY.value)}")
  spec = models.get("lenet_300_100")
  module = spec.build(10)
  ds = common.fake_dataset((28, 28, 1))
  steps = _STEPS.value
  base = train.Trainer(module, optax.adam(1e-3), batch_size=60)
  for k in map(int, _TICKETS.value):
    states, roles = common.stacked_states(base, spec, module, ds, k, _DENSITY.value)
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), states.params)
    calls = {}
    for name, hook in _hooks(shapes, roles, steps).items():
      trainer = dataclasses.replace(base, mask_updates=hook)
      calls[name] = common.training_call(trainer, jax.tree.map(lambda x: x.copy(), states), ds, steps)
      jax.block_until_ready(calls[name]())  # compile and warm
    times = {name: [] for name in calls}
    for rep in range(_REPEATS.value):
      for name in common.rotated(list(calls), rep):  # no variant always first (or after the same one)
        t0 = time.perf_counter()
        jax.block_until_ready(calls[name]())
        times[name].append((time.perf_counter() - t0) / steps)
    masked = statistics.median(times["masked"])
    for name, ts in times.items():
      med = statistics.median(ts)
      common.emit({"bench": "sparse_step", "tickets": k, "variant": name, "steps": steps,
                   "seconds_per_step": med, "ratio_to_masked": med / masked,
                   "repeats": _REPEATS.value, **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
