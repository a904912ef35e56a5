"""Any network: roles inferred from the layers that own each kernel, overrides, and the ways a
network can be given (linen with or without `train`, an init/apply pair, an import path)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax import models
from ltjax.core.roles import CONV, FC, FIXED, OUTPUT
from ltjax.models import network


class _Mixed(nn.Module):
  """Conv, norm, embedding and two Dense layers; the Dense layers named so that the output layer
  ('aa') sorts before the hidden one ('zz'): roles must follow call order, not names."""

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(4, (3, 3))(x)
    x = nn.LayerNorm()(x)
    h = nn.relu(nn.Dense(8, name="zz")(x.reshape((x.shape[0], -1))))
    h = h + nn.Embed(3, 8)(jnp.zeros((x.shape[0],), jnp.int32))
    return nn.Dense(3, name="aa")(h)


def _roles(net, shape=(6, 6, 1), overrides=None):
  module, roles_of = models.resolve(net, 3, {}, shape, overrides)
  params = jax.eval_shape(lambda k: module.init({"params": k}, jnp.zeros((1,) + shape)), jax.random.key(0))
  return roles_of(params["params"])


def test_roles_follow_layer_types_and_call_order():
  roles = _roles(_Mixed())
  assert roles["Conv_0"] == {"kernel": CONV, "bias": FIXED}
  assert roles["zz"] == {"kernel": FC, "bias": FIXED}
  assert roles["aa"] == {"kernel": OUTPUT, "bias": FIXED}
  assert roles["LayerNorm_0"] == {"scale": FIXED, "bias": FIXED}
  assert roles["Embed_0"] == {"embedding": FIXED}


def test_overrides_by_path_pattern_and_their_errors():
  roles = _roles(_Mixed(), overrides={"aa/kernel": "fixed", "z*/kernel": "output"})
  assert roles["aa"]["kernel"] == FIXED and roles["zz"]["kernel"] == OUTPUT
  assert _roles(_Mixed(), overrides=("Conv_0/kernel=fixed",))["Conv_0"]["kernel"] == FIXED
  with pytest.raises(models.ModelError, match="pattern 'nope/\\*' matches no parameter"):
    _roles(_Mixed(), overrides={"nope/*": "fixed"})
  with pytest.raises(models.ModelError, match="'big' is not a role"):
    _roles(_Mixed(), overrides={"aa/kernel": "big"})


def test_a_network_with_nothing_to_prune_is_refused():
  class OnlyNorm(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.LayerNorm()(x)
  with pytest.raises(models.ModelError, match="nothing to prune"):
    _roles(OnlyNorm(), shape=(3,))


def test_linen_without_a_train_flag_and_a_plain_pair_run_as_ltjax_calls_them():
  class NoTrain(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(2)(nn.relu(nn.Dense(4)(x)))
  wrapped = models.adapt(NoTrain())
  assert isinstance(wrapped, network.LinenWithoutTrain)
  variables = wrapped.init({"params": jax.random.key(0)}, jnp.ones((1, 3)), train=False)
  assert wrapped.apply(variables, jnp.ones((5, 3)), train=True).shape == (5, 2)

  def init(key, x):
    k1, k2 = jax.random.split(key)
    return {"hidden": {"w": jax.random.normal(k1, (x.shape[-1], 4))},
            "head": {"w": jax.random.normal(k2, (4, 2)), "b": jnp.zeros(2)}}

  def apply(params, x):
    return jax.nn.relu(x @ params["hidden"]["w"]) @ params["head"]["w"] + params["head"]["b"]

  module, roles_of = models.resolve((init, apply), 2, {}, (3,))
  params = module.init({"params": jax.random.key(1)}, jnp.ones((1, 3)))["params"]
  assert roles_of(params) == {"hidden": {"w": FC}, "head": {"w": OUTPUT, "b": FIXED}}
  np.testing.assert_allclose(module.apply({"params": params}, jnp.ones((2, 3))),
                             apply(params, jnp.ones((2, 3))))


def test_registered_models_keep_their_declared_roles():
  module, roles_of = models.resolve("lenet_300_100", 10, {}, (28, 28, 1))
  params = jax.eval_shape(lambda k: module.init(k, jnp.zeros((1, 28, 28, 1))), jax.random.key(0))
  assert roles_of(params["params"]) == models.get("lenet_300_100").layer_roles(params["params"])


def test_import_paths_build_with_num_classes_and_kwargs_or_fail_in_one_line():
  module, _ = models.resolve("examples.networks:TwoLayerMLP", 7, {"hidden": 5}, (4,))
  assert module.module.num_classes == 7 and module.module.hidden == 5
  for path, message in [("examples.networks", "unknown model 'examples.networks'"),
                        ("examples.networks:", "not an import path"),
                        ("examples.nowhere:Net", "cannot import 'examples.nowhere'"),
                        ("examples.networks:Nope", "has no attribute 'Nope'")]:
    with pytest.raises(models.ModelError, match=message):
      models.resolve(path, 3, {}, (4,))
  with pytest.raises(models.ModelError, match="building it with .*depth"):
    models.resolve("examples.networks:TwoLayerMLP", 3, {"depth": 2}, (4,))
  with pytest.raises(models.ModelError, match="expected a flax.linen.Module or an \\(init, apply\\) pair"):
    models.resolve(42, 3, {}, (4,))
