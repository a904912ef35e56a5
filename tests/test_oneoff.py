"""One-off programs (ltjax.engine.oneoff.jit): compiled with less optimization on CPU,
bitwise the same results, and usable inside other traces."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltjax import models
from ltjax.engine import oneoff, train

# What a user's run compiles with on CPU (conftest's XLA_FLAGS would otherwise apply).
DEFAULTS = {"xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True}
SUITE = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


@pytest.mark.parametrize("name, shape", [("lenet_300_100", (1, 28, 28, 1)), ("conv2", (1, 32, 32, 3))])
def test_an_initializer_compiled_as_a_one_off_gives_the_same_bits(name, shape):
  module = models.registry.get(name).build()

  def init(key):
    return module.init({"params": key, "dropout": key}, jnp.zeros(shape), train=False)
  # Against XLA's defaults (level 3, fusion emitters), which conftest replaces for the suite.
  plain = jax.jit(init, compiler_options=DEFAULTS)(jax.random.key(3))
  quick = oneoff.jit(init)(jax.random.key(3))
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(quick)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_inside_another_trace_it_is_part_of_that_program():
  double = oneoff.jit(lambda x: 2 * x)
  assert jax.eval_shape(double, jax.ShapeDtypeStruct((3,), jnp.float32)).shape == (3,)
  np.testing.assert_array_equal(jax.jit(lambda x: double(x) + 1)(jnp.ones(3)), np.full(3, 3.0))
  np.testing.assert_array_equal(jax.vmap(double)(jnp.ones((2, 3))), np.full((2, 3), 2.0))


def test_the_suites_compile_options_compute_the_defaults_bits(small_mlp, tiny_data):
  # conftest compiles the suite's programs at LLVM level 1 with the elemental emitters (a faster
  # compile): what the tests check must be what a user's run (level 3, fusion emitters) computes.
  # Five masked Adam steps, each way; level 0 differs.
  _, module, init, _ = small_mlp
  trainer = train.Trainer(module, optax.adam(1e-2), batch_size=30)
  params = init(jax.random.key(1))
  mask = jax.tree.map(lambda p: jax.random.bernoulli(jax.random.key(2), 0.5, p.shape), params)
  keys = jax.random.split(jax.random.key(3), 1)
  one = lambda t: jax.tree.map(lambda x: x[None], t)  # noqa: E731
  state = jax.tree.map(lambda x: x[0], trainer.init_states(one(params), one(mask), jax.vmap(lambda _: {})(keys),
                                                           keys))
  x, y = tiny_data.normalize(tiny_data.train.images[:30]), tiny_data.train.labels[:30]

  def steps(state):
    for s in range(5):
      state, _ = trainer.train_step(state, x, y, s)
    return state
  options = [SUITE, DEFAULTS, {**DEFAULTS, "xla_cpu_use_fusion_emitters": False},
             {**DEFAULTS, "xla_backend_optimization_level": 1}, {**DEFAULTS, "xla_backend_optimization_level": 0}]
  runs = [jax.jit(steps, compiler_options=o)(state) for o in options]
  same = [all(np.array_equal(np.asarray(a), np.asarray(b))
              for a, b in zip(jax.tree.leaves(r), jax.tree.leaves(runs[1]))) for r in runs]
  assert same == [True, True, True, True, False]  # level 0 (no multiply-add contraction): the check can fail
