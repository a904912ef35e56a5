import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import layer_counts, layer_sizes

from ltjax.core import masks
from ltjax.core import roles as roles_lib


def _params():
  return {"fc1": {"kernel": jnp.arange(12.0).reshape(3, 4) - 5.0, "bias": jnp.ones(4)},
          "out": {"kernel": jnp.ones((4, 2)), "bias": jnp.zeros(2)}}


def _roles(params):
  return roles_lib.kernel_roles(params, "out")


def test_roles_rule_kernels_prunable_biases_fixed():
  assert _roles(_params()) == {"fc1": {"kernel": "fc", "bias": "fixed"},
                               "out": {"kernel": "output", "bias": "fixed"}}


def test_ones_and_apply_zero_exactly_positive():
  p = _params()
  m = masks.ones(p)
  chex.assert_trees_all_equal(masks.apply(p, m), p)
  m["fc1"]["kernel"] = p["fc1"]["kernel"] > 0
  out = masks.apply(p, m)["fc1"]["kernel"]
  assert np.all(np.asarray(out)[~np.asarray(m["fc1"]["kernel"])] == 0.0)
  # +0.0, not -0.0, so checkpoints and sign-based criteria see clean zeros.
  assert not np.any(np.signbit(np.asarray(out)[~np.asarray(m["fc1"]["kernel"])]))


def test_counts_and_density_globally_and_per_layer():
  p = _params()
  k = _roles(p)
  m = masks.ones(p)
  assert masks.size(p, k) == 12 + 8
  m["fc1"]["kernel"] = m["fc1"]["kernel"].at[0].set(False)  # 4 of 12 pruned
  assert int(masks.count(m, k)) == 16
  np.testing.assert_allclose(float(masks.density(m, k)), 16 / 20)
  np.testing.assert_allclose(float(masks.layer_density(m, k)["fc1/kernel"]), 8 / 12)
  assert {n: int(c) for n, c in layer_counts(m, k).items()} == {"fc1/kernel": 8, "out/kernel": 8}
  assert layer_sizes(p, k) == {"fc1/kernel": 12, "out/kernel": 8}


def test_check_accepts_matching_mask():
  p = _params()
  masks.check(p, masks.ones(p), _roles(p))
  masks.check(jax.eval_shape(lambda: p), jax.eval_shape(lambda: masks.ones(p)))


@pytest.mark.parametrize("corrupt, message", [
    (lambda m: {"fc1": m["fc1"]}, "structure"),
    (lambda m: {**m, "out": {**m["out"], "kernel": jnp.ones((2, 4), bool)}}, "shape"),
    (lambda m: {**m, "out": {**m["out"], "kernel": jnp.ones((4, 2), jnp.float32)}}, "dtype"),
    (lambda m: {**m, "out": {**m["out"], "bias": jnp.zeros(2, bool)}}, "non-prunable"),
])
def test_check_rejects_mismatched_masks(corrupt, message):
  p = _params()
  with pytest.raises(masks.MaskError, match=message):
    masks.check(p, corrupt(masks.ones(p)), _roles(p))


def test_functions_vmap_over_ticket_axis():
  p = _params()
  k = _roles(p)
  stacked = jax.tree.map(lambda x: jnp.stack([x, x]), masks.ones(p))
  stacked["fc1"]["kernel"] = stacked["fc1"]["kernel"].at[1, 0].set(False)
  np.testing.assert_array_equal(jax.vmap(lambda m: masks.count(m, k))(stacked), [20, 16])


def test_sizes_by_kind():
  p = _params()
  assert masks.sizes_by_role(p, _roles(p)) == {"fc": 12, "output": 8}
