r"""The plain jitted flax + optax loop a JAX user would write by hand, to hold ltjax's tickets to.

  python -m benchmarks.handwritten --steps=5000 --data_dir=../shared/datasets/tfds
  python -m benchmarks.handwritten --steps=5000 --seeds=15     # 15 networks, one after another

LeNet-300-100 on MNIST with the paper's schedule (Adam 1.2e-3, batch 60, validation on the last
5,000 training examples every `eval_every` steps, test at the best validation step), a fixed mask
applied to the gradients and the weights (all ones by default: the masked step's work, which is
ltjax's whatever the density), no pruning, no files: the dataset is read with `tfds.data_source`,
standardized once and put on the device; each step is one jitted call on an index batch of a
per-epoch permutation (the usual shape of the flax examples, with the data already on the device
so the baseline is not held back by host copies). `--seeds` trains that many networks one after
another in the same process, with the same compiled step. Prints one JSON line: wall seconds since
the process started and the accuracies reached.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # before the heavy imports: the whole process is timed

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow_datasets as tfds
from absl import flags

from experiments import cli

_STEPS = flags.DEFINE_integer("steps", 5000, "Training steps.")
_EVAL = flags.DEFINE_integer("eval_every", 100, "Validation interval in steps.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default $LTJAX_DATA_DIR).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed (of the first network).")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Networks to train one after another (seeds seed, seed+1, ...).")
_DENSITY = flags.DEFINE_float("density", 1.0, "Fraction of each kernel's weights the fixed random mask keeps.")
cli.check_flag("steps", lambda v: v >= 1, "steps must be >= 1")
cli.check_flag("eval_every", lambda v: v >= 1, "eval_every must be >= 1")
cli.check_flag("seed", lambda v: 0 <= v < 2**32, "seed must be in [0, 2**32)")
cli.check_flag("seeds", lambda v: 1 <= v <= 10_000, "seeds must be in [1, 10000]")
cli.check_flag("density", lambda v: 0.0 < v <= 1.0, "density must be in (0, 1]")
cli.check_flag("data_dir", lambda v: v is None or os.path.isdir(os.path.join(os.path.expanduser(v), "mnist")),
               "data_dir must hold prepared mnist")


class LeNet300100(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(300)(x))
    x = nn.relu(nn.Dense(100)(x))
    return nn.Dense(10)(x)


def load(data_dir):
  def arrays(split):
    source = tfds.data_source("mnist", split=split, data_dir=data_dir)
    items = source.__getitems__(range(len(source)))
    return (np.stack([e["image"] for e in items]).astype(np.float32),
            np.asarray([e["label"] for e in items], np.int32))
  (x, y), (x_test, y_test) = arrays("train"), arrays("test")
  x_train, y_train, x_val, y_val = x[:-5000], y[:-5000], x[-5000:], y[-5000:]
  mean, std = x_train.mean(), x_train.std()
  norm = lambda a: jnp.asarray((a - mean) / std)
  return ((norm(x_train), jnp.asarray(y_train)), (norm(x_val), jnp.asarray(y_val)),
          (norm(x_test), jnp.asarray(y_test)))


def main(argv):
  del argv
  data_dir = _DATA_DIR.value or os.environ.get("LTJAX_DATA_DIR")
  if not data_dir or not os.path.isdir(os.path.join(data_dir, "mnist")):
    cli.fail("no prepared mnist: pass --data_dir or set LTJAX_DATA_DIR")
  t_load = time.perf_counter()
  (x, y), (x_val, y_val), (x_test, y_test) = load(data_dir)
  t_load = time.perf_counter() - t_load
  model, tx = LeNet300100(), optax.adam(1.2e-3)

  def loss_fn(params, images, labels):
    logits = model.apply(params, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

  @jax.jit
  def train_step(params, opt_state, mask, idx):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x[idx], y[idx])
    grads = jax.tree.map(jnp.multiply, grads, mask)
    updates, opt_state = tx.update(grads, opt_state, params)
    return jax.tree.map(jnp.multiply, optax.apply_updates(params, updates), mask), opt_state, loss

  @jax.jit
  def evaluate(params, images, labels):
    loss, logits = loss_fn(params, images, labels)
    return loss, (logits.argmax(-1) == labels).mean()

  runs = []
  for seed in range(_SEED.value, _SEED.value + _SEEDS.value):
    params = model.init(jax.random.key(seed), x[:1])
    rng = np.random.default_rng(seed)
    mask = jax.tree.map(lambda p: jnp.asarray(rng.random(p.shape) < _DENSITY.value if p.ndim > 1
                                              else np.ones(p.shape), p.dtype), params)
    params = jax.tree.map(jnp.multiply, params, mask)
    opt_state = tx.init(params)
    batch, perm, pos = 60, rng.permutation(len(x)), 0
    best = (np.inf, 0.0, 0, params)
    for step in range(1, _STEPS.value + 1):
      if pos + batch > len(perm):
        perm, pos = rng.permutation(len(x)), 0
      params, opt_state, _ = train_step(params, opt_state, mask, perm[pos:pos + batch])
      pos += batch
      if step % _EVAL.value == 0 or step == _STEPS.value:
        val_loss, val_acc = map(float, evaluate(params, x_val, y_val))
        if val_loss < best[0]:
          best = (val_loss, val_acc, step, params)
    runs.append({"seed": seed, "best_val_step": best[2],
                 "test_accuracy_at_best_val": float(evaluate(best[3], x_test, y_test)[1]),
                 "test_accuracy_final": float(evaluate(params, x_test, y_test)[1])})
  print(json.dumps({"bench": "handwritten", "steps": _STEPS.value, "eval_every": _EVAL.value,
                    "seeds": _SEEDS.value, "density": _DENSITY.value,
                    "wall_seconds": time.perf_counter() - _T0, "load_seconds": t_load,
                    **{k: runs[0][k] for k in ("best_val_step", "test_accuracy_at_best_val",
                                               "test_accuracy_final")},
                    "runs": runs, "backend": jax.default_backend(), "jax": jax.__version__}), flush=True)


if __name__ == "__main__":
  cli.run(main)
