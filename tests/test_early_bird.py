"""Early-bird tickets: masks drawn when they settle, at the target density, steps saved counted."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltjax.core import masks, pruning
from ltjax.engine import train
from ltjax.methods import early_bird
from ltjax.models import mlp, registry


@pytest.fixture(scope="module")
def dense(tiny_data):
  spec = registry.ModelSpec(name="eb_mlp", output_layer="out",
                            build=lambda num_classes=10: mlp.MLP(hidden=(16, 8), num_classes=num_classes))
  module = spec.build()
  trainer = train.Trainer(module, optax.adam(1e-2), batch_size=20)
  keys = jax.random.split(jax.random.key(0), 2)
  params = jax.vmap(lambda k: module.init(k, jnp.zeros((1,) + tiny_data.input_shape))["params"])(keys)
  roles = spec.layer_roles(jax.tree.map(lambda x: x[0], params))
  states = trainer.init_states(params, jax.vmap(masks.ones)(params), jax.vmap(lambda p: {})(params), keys)
  sizes = masks.sizes_by_role(jax.tree.map(lambda x: x[0], params), roles)
  rates = pruning.rates_tree(roles, pruning.one_shot_rates({"fc": 0.2, "output": 0.1}, sizes, 0.2))
  return trainer, states, roles, rates


def test_masks_settle_and_the_draw_is_a_valid_ticket(dense, tiny_data):
  trainer, states, roles, rates = dense
  draw, _ = early_bird.find(trainer, states, tiny_data, roles, rates, every=10, max_steps=600,
                            threshold=0.05, patience=3)
  assert (draw.step > 0).all() and (draw.step <= draw.steps_trained).all()
  assert draw.steps_trained == draw.step.max()  # stops once the last ticket settled
  np.testing.assert_array_equal(draw.steps_saved, 600 - draw.step)
  # The three checks before each draw were all under the threshold.
  for t, s in enumerate(draw.step):
    check = s // 10 - 2  # distances start at the second check
    assert (draw.distances[check - 2:check + 1, t] < 0.05).all()
  for t in range(2):
    one = jax.tree.map(lambda m: m[t], draw.mask)
    expected = pruning.prune(jax.tree.map(jnp.ones_like, jax.tree.map(lambda m: m.astype(float), one)),
                             jax.tree.map(jnp.ones_like, one), roles, rates)  # the count alone
    assert int(masks.count(one, roles)) == int(masks.count(expected, roles))
  again, _ = early_bird.find(trainer, states, tiny_data, roles, rates, every=10, max_steps=600,
                             threshold=0.05, patience=3)  # deterministic: the same draw, bit for bit
  np.testing.assert_array_equal(again.step, draw.step)
  np.testing.assert_array_equal(again.distances, draw.distances)
  for a, b in zip(jax.tree.leaves(again.mask), jax.tree.leaves(draw.mask)):
    np.testing.assert_array_equal(a, b)


def test_a_mask_that_never_settles_trains_to_the_end(dense, tiny_data):
  trainer, states, roles, rates = dense
  draw, _ = early_bird.find(trainer, states, tiny_data, roles, rates, every=10, max_steps=40,
                            threshold=1e-9, patience=2)
  assert (draw.step == -1).all() and draw.steps_trained == 40
  assert (draw.steps_saved == 0).all() and draw.distances.shape == (3, 2)


def test_bad_settings(dense, tiny_data):
  trainer, states, roles, rates = dense
  with pytest.raises(ValueError, match="threshold"):
    early_bird.find(trainer, states, tiny_data, roles, rates, every=10, max_steps=40, threshold=0)
