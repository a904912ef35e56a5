"""One-off programs (ltjax.engine.oneoff.jit): compiled with less optimization on CPU,
bitwise the same results, and usable inside other traces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax import models
from ltjax.engine import oneoff


@pytest.mark.parametrize("name, shape", [("lenet_300_100", (1, 28, 28, 1)), ("conv2", (1, 32, 32, 3))])
def test_an_initializer_compiled_as_a_one_off_gives_the_same_bits(name, shape):
  module = models.registry.get(name).build()

  def init(key):
    return module.init({"params": key, "dropout": key}, jnp.zeros(shape), train=False)
  plain, quick = jax.jit(init)(jax.random.key(3)), oneoff.jit(init)(jax.random.key(3))
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(quick)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_inside_another_trace_it_is_part_of_that_program():
  double = oneoff.jit(lambda x: 2 * x)
  assert jax.eval_shape(double, jax.ShapeDtypeStruct((3,), jnp.float32)).shape == (3,)
  np.testing.assert_array_equal(jax.jit(lambda x: double(x) + 1)(jnp.ones(3)), np.full(3, 3.0))
  np.testing.assert_array_equal(jax.vmap(double)(jnp.ones((2, 3))), np.full((2, 3), 2.0))
