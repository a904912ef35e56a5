"""Supermasks: only the mask learns; the frozen random weights do better masked than unmasked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.methods import supermask
from ltjax.models import mlp, registry


def _accuracy(apply, params, ds):
  logits = apply(params, ds.normalize(ds.test.images))
  return float((logits.argmax(-1) == ds.test.labels).mean())


def test_a_learned_mask_over_frozen_weights_beats_the_unmasked_net(tiny_data):
  spec = registry.ModelSpec(name="sm_mlp", output_layer="out",
                            build=lambda num_classes=10: mlp.MLP(hidden=(64, 32), num_classes=num_classes))
  module = spec.build()
  params = module.init(jax.random.key(0), jnp.zeros((1,) + tiny_data.input_shape))["params"]
  before = jax.tree.map(np.asarray, params)
  roles = spec.layer_roles(params)
  apply = lambda p, x: module.apply({"params": p}, x)  # noqa: E731
  r = supermask.train(apply, params, roles, tiny_data, steps=400, key=jax.random.key(1), lr=0.1)
  jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, params))  # frozen
  assert 0.05 < r.density < 0.95
  assert all(m.dtype == jnp.bool_ for m in jax.tree.leaves(r.mask))
  assert r.test_accuracy > _accuracy(apply, params, tiny_data) + 0.2
  assert r.losses[-50:].mean() < r.losses[:50].mean()


def test_bad_settings(tiny_data):
  with pytest.raises(ValueError, match="steps"):
    supermask.train(lambda p, x: x, {}, {}, tiny_data, steps=0, key=jax.random.key(0))
