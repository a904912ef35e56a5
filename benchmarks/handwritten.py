r"""The plain jitted flax + optax loop a JAX user would write by hand, to hold ltjax's one ticket to.

  python -m benchmarks.handwritten --steps=5000 --data_dir=../shared/datasets/tfds

LeNet-300-100 on MNIST with the paper's schedule (Adam 1.2e-3, batch 60, validation on the last
5,000 training examples every `eval_every` steps, test at the end), no masks, no pruning, no files:
the dataset is read with `tfds.data_source`, standardized once and put on the device; each step is
one jitted call on an index batch of a per-epoch permutation (the usual shape of the flax
examples, with the data already on the device so the baseline is not held back by host copies).
Prints one JSON line: wall seconds since the process started and the accuracies reached.
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
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
cli.check_flag("steps", lambda v: v >= 1, "steps must be >= 1")
cli.check_flag("eval_every", lambda v: v >= 1, "eval_every must be >= 1")
cli.check_flag("seed", lambda v: 0 <= v < 2**32, "seed must be in [0, 2**32)")
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
  params = model.init(jax.random.key(_SEED.value), x[:1])
  opt_state = tx.init(params)

  def loss_fn(params, images, labels):
    logits = model.apply(params, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

  @jax.jit
  def train_step(params, opt_state, idx):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x[idx], y[idx])
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def evaluate(params, images, labels):
    loss, logits = loss_fn(params, images, labels)
    return loss, (logits.argmax(-1) == labels).mean()

  rng = np.random.default_rng(_SEED.value)
  batch, perm, pos = 60, rng.permutation(len(x)), 0
  best = (np.inf, 0.0, 0, params)
  for step in range(1, _STEPS.value + 1):
    if pos + batch > len(perm):
      perm, pos = rng.permutation(len(x)), 0
    params, opt_state, _ = train_step(params, opt_state, perm[pos:pos + batch])
    pos += batch
    if step % _EVAL.value == 0 or step == _STEPS.value:
      val_loss, val_acc = map(float, evaluate(params, x_val, y_val))
      if val_loss < best[0]:
        best = (val_loss, val_acc, step, params)
  final_acc = float(evaluate(params, x_test, y_test)[1])
  best_acc = float(evaluate(best[3], x_test, y_test)[1])
  print(json.dumps({"bench": "handwritten", "steps": _STEPS.value, "eval_every": _EVAL.value,
                    "wall_seconds": time.perf_counter() - _T0, "load_seconds": t_load,
                    "best_val_step": best[2],
                    "test_accuracy_at_best_val": best_acc, "test_accuracy_final": final_acc,
                    "backend": jax.default_backend(), "jax": jax.__version__}), flush=True)


if __name__ == "__main__":
  cli.run(main)
