"""A ticket exported as a narrower dense MLP or conv net computes what the masked network computes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.core import masks, pruning
from ltjax.models import conv, export
from ltjax.models.mlp import MLP


@pytest.fixture(scope="module")
def net():
  module = MLP(hidden=(16, 8), num_classes=10)
  params = module.init(jax.random.key(0), jnp.zeros((1, 36)))["params"]
  roles = jax.tree.map(lambda _: "fixed", params)
  for n in ("fc1", "fc2"):
    roles[n]["kernel"] = "fc"
  roles["out"]["kernel"] = "output"
  return module, params, roles


def _masked(module, params, mask, x):
  return module.apply({"params": masks.apply(params, mask)}, x)


def _x(n=64):
  return jax.random.normal(jax.random.key(1), (n, 36))


@pytest.mark.parametrize("rate", [0.5, 0.9, 0.97])
def test_exported_outputs_equal_the_masked_networks(net, rate):
  module, params, roles = net
  mask = pruning.prune_round(params, params, masks.ones(params), roles,
                             pruning.rates_tree(roles, {"fc": rate, "output": rate / 2}), score="random",
                             key=jax.random.key(2))
  try:
    small = export.export_mlp(module, params, mask)
  except export.ExportError:
    pytest.skip("this draw cut every path")
  np.testing.assert_allclose(small.apply(_x()), _masked(module, params, mask, _x()), rtol=1e-5, atol=1e-5)
  assert small.num_weights() <= sum(p.size for p in jax.tree.leaves(params))


def test_units_without_inputs_fold_into_the_next_bias_and_units_without_outputs_go(net):
  module, params, _ = net
  mask = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
  mask["fc1"]["kernel"] = mask["fc1"]["kernel"].at[:, :4].set(False)   # units 0-3: no inputs
  mask["fc2"]["kernel"] = mask["fc2"]["kernel"].at[4:6, :].set(False)  # units 4, 5 of fc1: no outputs
  mask["out"]["kernel"] = mask["out"]["kernel"].at[7, :].set(False)    # fc2 unit 7: no outputs
  mask["fc1"]["kernel"] = mask["fc1"]["kernel"].at[:3, :].set(False)   # inputs 0-2: read by nothing
  params = dict(params, fc1=dict(params["fc1"], bias=params["fc1"]["bias"] + 0.5))  # constants > 0 survive relu
  small = export.export_mlp(module, params, mask)
  assert small.module.hidden == (10, 7) and small.inputs.tolist() == list(range(3, 36))
  np.testing.assert_allclose(small.apply(_x()), _masked(module, params, mask, _x()), rtol=1e-5, atol=1e-5)


def test_saved_as_plain_params_that_flax_runs(net, tmp_path):
  module, params, roles = net
  mask = pruning.prune_round(params, params, masks.ones(params), roles,
                             pruning.rates_tree(roles, {"fc": 0.8, "output": 0.5}), score="magnitude")
  small = export.export_mlp(module, params, mask)
  export.save(tmp_path / "ticket", small)
  back = export.load(tmp_path / "ticket")
  x = _x()
  mlp = MLP(hidden=back.module.hidden, num_classes=10)  # a plain linen module of the saved widths
  out = mlp.apply({"params": back.params}, x[:, back.inputs])
  np.testing.assert_allclose(out, _masked(module, params, mask, x), rtol=1e-5, atol=1e-5)


def test_what_cannot_be_exported_is_one_line(net):
  module, params, _ = net
  dead = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
  dead["fc2"]["kernel"] = jnp.zeros_like(dead["fc2"]["kernel"])
  with pytest.raises(export.ExportError, match="no path from its inputs to its outputs"):
    export.export_mlp(module, params, dead)
  with pytest.raises(export.ExportError, match="export handles ltjax's MLP"):
    export.export_mlp(nn.Dense(3), params, dead)
  with pytest.raises(export.ExportError, match="must hold kernel and bias"):
    export.export_mlp(module, {"fc1": params["fc1"]}, dead)


# ---------------------------------------------------------------- conv nets
@pytest.fixture(scope="module")
def convnet():
  module = conv.ConvNet(filters=(6, 8), hidden=(9,), num_classes=5)
  params = module.init(jax.random.key(3), jnp.zeros((1, 4, 4, 3)))["params"]
  return module, params


def _conv_x():
  return jax.random.normal(jax.random.key(4), (8, 4, 4, 3))


def test_exported_conv_nets_compute_the_masked_network(convnet):
  module, params = convnet
  keys = iter(jax.random.split(jax.random.key(0), 20))
  # Random weights pruned, biases moved off 0 (some constants survive relu, some do not), and
  # every case of a channel: no inputs into a conv, no outputs, no inputs into a dense layer.
  mask = {n: {"kernel": jax.random.uniform(next(keys), layer["kernel"].shape) < 0.7,
              "bias": jnp.ones(layer["bias"].shape, bool)} for n, layer in params.items()}
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(next(keys), p.shape), params)
  params["conv1"]["bias"] = params["conv1"]["bias"].at[:2].set(jnp.array([-0.5, 0.5]))
  mask["conv1"]["kernel"] = mask["conv1"]["kernel"].at[..., :2].set(False)   # constants 0 and 0.5 into conv2
  mask["conv2"]["kernel"] = mask["conv2"]["kernel"].at[:, :, 5].set(False)   # conv1 channel 5: no outputs
  mask["conv2"]["kernel"] = mask["conv2"]["kernel"].at[..., 2:4].set(False)  # constants into fc1
  mask["fc1"]["kernel"] = mask["fc1"]["kernel"].at[7::8].set(False)         # conv2 channel 7: no outputs
  mask["out"]["kernel"] = mask["out"]["kernel"].at[1].set(False)            # fc1 unit 1: no outputs
  small = export.export(module, params, mask)
  x = _conv_x()
  np.testing.assert_allclose(small.apply(x), _masked(module, params, mask, x), rtol=1e-4, atol=1e-4)
  # conv1: the zero constant and channel 5 go, the 0.5 constant stays; conv2: 2, 3 fold, 7 goes.
  assert small.module.filters == (4, 5) and small.module.hidden == (8,)


def test_a_conv_tickets_export_saves_and_loads(convnet, tmp_path):
  module, params = convnet
  mask = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
  mask["conv1"]["kernel"] = mask["conv1"]["kernel"].at[..., :4].set(False)
  small = export.export(module, params, mask)
  assert small.module.filters == (2, 8)  # zero constants into a conv go
  export.save(tmp_path / "conv", small)
  back = export.load(tmp_path / "conv")
  x = _conv_x()
  plain = conv.ConvNet(filters=back.module.filters, hidden=back.module.hidden, num_classes=5)
  np.testing.assert_allclose(plain.apply({"params": back.params}, x), _masked(module, params, mask, x),
                             rtol=1e-4, atol=1e-4)
