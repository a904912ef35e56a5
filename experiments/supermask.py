r"""Supermasks (Zhou et al. 2019): learn a mask over a network's frozen random initialization.

  python -m experiments.supermask                          # LeNet-300-100 on MNIST, 3000 steps
  python -m experiments.supermask --steps=10000 --lr=0.1 --seed=1

Prints one JSON line: the mask's density, test accuracy with the deterministic mask
(sigmoid(score) > 0.5) and with one Bernoulli sample, against the same weights unmasked.
"""

import json
import time

import jax
from absl import flags

from experiments import cli
from ltjax import configs, models
from ltjax.methods import supermask
from ltjax.runs import experiment

_MODEL = flags.DEFINE_string("model", "lenet_300_100", "Registered model name.")
_DATASET = flags.DEFINE_string("dataset", "mnist", "TFDS dataset (prepared, or prepared on first use).")
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps of the scores.")
_LR = flags.DEFINE_float("lr", 0.1, "Adam learning rate of the scores.")
_BATCH = flags.DEFINE_integer("batch_size", 60, "Batch size.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the frozen weights and of the sampling.")
cli.check_flag("model", lambda v: v in models.names(), f"model must be one of {', '.join(models.names())}")
cli.check_flag("dataset", lambda v: bool(v.strip()), "dataset must not be empty")
for _name in ("steps", "batch_size"):
  cli.check_flag(_name, lambda v: v >= 1, f"{_name} must be >= 1")
cli.check_flag("lr", lambda v: 0 < v < float("inf"), "lr must be a finite number > 0")
cli.check_flag("seed", lambda v: 0 <= v < 2**32, "seed must be in [0, 2**32)")


def main(argv):
  del argv
  cfg = configs.get("lenet_mnist")  # the data settings of every lottery run
  cfg.dataset = _DATASET.value
  try:
    ds = experiment.load_dataset(cfg)
  except experiment.UsageError as e:
    cli.fail(e)
  spec = models.get(_MODEL.value)
  module = spec.build(ds.num_classes)
  params = module.init(jax.random.key(_SEED.value), ds.normalize(ds.train.images[:1]), train=False)["params"]
  apply = lambda p, x: module.apply({"params": p}, x, train=False)  # noqa: E731
  t0 = time.perf_counter()
  r = supermask.train(apply, params, spec.layer_roles(params), ds, _STEPS.value,
                      jax.random.key(_SEED.value + 1), batch_size=_BATCH.value, lr=_LR.value)
  unmasked = supermask.accuracy(apply, params, None, ds)
  print(json.dumps({"model": _MODEL.value, "dataset": _DATASET.value, "steps": _STEPS.value,
                    "lr": _LR.value, "seed": _SEED.value, "density": r.density,
                    "test_accuracy": r.test_accuracy, "sampled_test_accuracy": r.sampled_test_accuracy,
                    "unmasked_test_accuracy": unmasked, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
  cli.run(main)
