r"""What finding a ticket at initialization costs, in training steps of the same network.

  python -m benchmarks.criteria                          # LeNet-300-100, density 3.6%, layerwise
  python -m benchmarks.criteria --scope=global --density=0.01

For each criterion of `ltjax.methods.at_init`, times `prune_at_init` end to end (scoring and the exact
selection; SynFlow's 100 rescoring rounds included), compiled first, median of `--repeats`, and
divides by the median time of one compiled masked-Adam training step of the same network at the
paper's batch size (60). Prints one JSON line per criterion. Uses random images: the cost does not
depend on pixel values.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from benchmarks import common
from experiments import cli
from ltjax import models
from ltjax.core import masks, pruning, scores
from ltjax.engine import train
from ltjax.methods import at_init

_MODEL = flags.DEFINE_string("model", "lenet_300_100", "Registered model name.")
_DENSITY = flags.DEFINE_float("density", 0.036, "Fraction of each layer's weights kept.")
_SCOPE = flags.DEFINE_string("scope", pruning.LAYERWISE, "layerwise or global.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls (median).")
_CRITERIA = flags.DEFINE_list("criteria", ["snip", "grasp", "synflow", "magnitude", "random"],
                              "Criteria to time.")
cli.check_flag("model", lambda v: v in models.names(), f"model must be one of {', '.join(models.names())}")
cli.check_flag("density", lambda v: 0 < v <= 1, "density must be in (0, 1]")
cli.check_flag("scope", lambda v: v in (pruning.LAYERWISE, pruning.GLOBAL), "scope must be layerwise or global")
cli.check_flag("repeats", lambda v: v >= 1, "repeats must be >= 1")
cli.check_flag("criteria", lambda v: v and all(c in scores.names() for c in v),
               f"criteria must be among {', '.join(scores.names())}")


def _median(fn, repeats):
  fn()  # compile
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main(argv):
  del argv
  spec = models.get(_MODEL.value)
  module = spec.build(10)
  shape = (28, 28, 1) if "lenet" in _MODEL.value else (32, 32, 3)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.standard_normal((60,) + shape), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 10, 60), jnp.int32)
  variables = module.init(jax.random.key(0), images[:1], train=False)
  params, model_state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  roles = spec.layer_roles(params)
  trainer = train.Trainer(module, optax.adam(1.2e-3), batch_size=60)
  logits = lambda p, x: trainer.logits(p, model_state, x, train=False)[0]  # noqa: E731
  net = scores.Network(apply=logits, loss=lambda p, x, y: train.cross_entropy(logits(p, x), y),
                         input_shape=shape, images=images, labels=labels)
  ones = masks.ones(params)
  state = trainer.init_state(params, ones, model_state, jax.random.key(1))
  step = jax.jit(trainer.train_step)
  holder = {"state": state}

  def one_step():
    holder["state"], loss = step(holder["state"], images, labels, 0)[:2]
    return loss
  step_s = _median(one_step, max(_REPEATS.value, 20))
  for name in _CRITERIA.value:
    seconds = _median(lambda n=name: at_init.prune_at_init(
        n, params, ones, roles, _DENSITY.value, _SCOPE.value, net, jax.random.key(2)), _REPEATS.value)
    common.emit({"bench": "criterion_cost", "criterion": name, "model": _MODEL.value,
                 "density": _DENSITY.value, "scope": _SCOPE.value,
                 "iterations": scores.get(name).iterations, "seconds": seconds,
                 "train_step_seconds": step_s, "cost_in_train_steps": seconds / step_s,
                 **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
