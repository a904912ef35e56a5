"""Fully-connected networks: LeNet-300-100 (the paper's MNIST net) and the XOR net."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ltjax.models import registry

# The paper initializes with Gaussian Glorot (Glorot & Bengio 2010, normal variant); the others
# are there for the initialization study (`model_kwargs.init`).
INITIALIZERS = {
    "glorot_normal": nn.initializers.glorot_normal(),
    "glorot_uniform": nn.initializers.glorot_uniform(),
    "he_normal": nn.initializers.he_normal(),
    "he_uniform": nn.initializers.he_uniform(),
    "lecun_normal": nn.initializers.lecun_normal(),
}
glorot_normal = INITIALIZERS["glorot_normal"]


def initializer(name: str):
  if name not in INITIALIZERS:
    raise ValueError(f"unknown init {name!r}; known: {', '.join(INITIALIZERS)}")
  return INITIALIZERS[name]


class MLP(nn.Module):
  """Dense ReLU layers `hidden` followed by a dense output layer named `out`; inputs are flattened."""

  hidden: Sequence[int]
  num_classes: int
  activation: str = "relu"
  init_name: str = "glorot_normal"  # not `init`: that is flax's Module.init

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout or batch norm
    act = getattr(nn, self.activation)
    x = x.reshape((x.shape[0], -1)).astype(jnp.float32)
    kernel_init = initializer(self.init_name)
    for i, width in enumerate(self.hidden):
      x = act(nn.Dense(width, kernel_init=kernel_init, name=f"fc{i + 1}")(x))
    return nn.Dense(self.num_classes, kernel_init=kernel_init, name="out")(x)


def lenet_300_100(num_classes: int = 10, width: float = 1.0, init: str = "glorot_normal") -> MLP:
  """`width` scales both hidden layers (the network-size study); `init` names the initializer."""
  if isinstance(width, bool) or not isinstance(width, (int, float)) or round(100 * width) < 1:
    raise ValueError(f"width must leave each hidden layer at least one unit, got {width!r}")
  initializer(init)
  return MLP(hidden=(round(300 * width), round(100 * width)), num_classes=num_classes, init_name=init)


def xor_mlp(num_classes: int = 1, hidden_units: int = 10) -> MLP:
  """One hidden layer; one logit (sigmoid) output by default, as in the XOR experiment."""
  return MLP(hidden=(hidden_units,), num_classes=num_classes)


registry.register(registry.ModelSpec(
    name="lenet_300_100", build=lenet_300_100, output_layer="out",
    description="LeNet-300-100: 784-300-100-10 fully-connected, 266,200 prunable weights"))
registry.register(registry.ModelSpec(
    name="xor_mlp", build=xor_mlp, output_layer="out",
    description="2-H-1 MLP for the XOR experiment (H hidden units, default 10)"))
