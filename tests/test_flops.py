"""FLOPs counted from shapes (benchmarks.flops): hand counts of matmuls, convolutions, a training
step, and the nested programs of a scan and a cond."""

import jax
import jax.numpy as jnp
import flax.linen as nn
import optax

from benchmarks.flops import shape_flops
from ltjax.core import masks
from ltjax.engine import train


def test_a_matmul_and_its_gradient():
  x, w = jnp.ones((60, 784)), jnp.ones((784, 300))
  assert shape_flops(lambda x, w: x @ w, x, w) == 2 * 60 * 784 * 300
  # The forward matmul, then x^T times the output's gradient; no gradient for x is asked for.
  assert shape_flops(lambda x, w: jax.grad(lambda w: (x @ w).sum())(w), x, w) == 2 * 2 * 60 * 784 * 300


def test_a_convolution_counts_every_output_position_and_kernel_tap():
  conv = nn.Conv(8, (3, 3), feature_group_count=1)
  x = jnp.ones((2, 10, 10, 4))
  p = jax.eval_shape(conv.init, jax.random.key(0), x)
  assert shape_flops(conv.apply, p, x) == 2 * (2 * 10 * 10 * 8) * (3 * 3 * 4)
  grouped = nn.Conv(8, (3, 3), feature_group_count=2, padding="VALID")
  p = jax.eval_shape(grouped.init, jax.random.key(0), x)
  assert shape_flops(grouped.apply, p, x) == 2 * (2 * 8 * 8 * 8) * (3 * 3 * 2)


def test_a_masked_training_step(small_mlp, tiny_data):
  _, module, init, _ = small_mlp  # 36-16-8-10
  trainer = train.Trainer(module, optax.adam(1e-3), batch_size=30)
  params = init(jax.random.key(0))
  state = trainer.init_state(params, masks.ones(params), {}, jax.random.key(1))
  images, labels = tiny_data.train.images[:30].reshape(30, 6, 6, 1), tiny_data.train.labels[:30]
  weights = 36 * 16 + 16 * 8 + 8 * 10
  # Forward, each kernel's gradient, and the input gradient of every layer but the first.
  expected = 2 * 30 * (weights + weights + (16 * 8 + 8 * 10))
  assert shape_flops(trainer.train_step, state, images, labels, 0) == expected


def test_a_scan_counts_its_length_and_a_cond_its_costliest_branch():
  x, w = jnp.ones((4, 8)), jnp.ones((8, 8))
  one = 2 * 4 * 8 * 8
  body = lambda c, _: (c @ w, None)  # noqa: E731
  assert shape_flops(lambda x: jax.lax.scan(body, x, None, length=7)[0], x) == 7 * one
  branches = lambda p, x: jax.lax.cond(p, lambda: x @ w @ w, lambda: x)  # noqa: E731
  assert shape_flops(branches, True, x) == 2 * one
