"""The paper's CIFAR-10 convolutional networks Conv-2, Conv-4 and Conv-6 (VGG-like, no batch norm).

3x3 SAME convolutions with ReLU, a 2x2 max-pool after every pair, then fully-connected ReLU layers
of 256 and 256 units and a dense output layer `out`. As for the paper's other networks, every
kernel starts Gaussian Glorot (`glorot_normal`) and every bias at zero. The dropout variants
(rate 0.5 in the paper) drop the activations of the hidden fully-connected layers.

Prunable weights on 32x32x3 inputs: Conv-2 4,300,992; Conv-4 2,425,024; Conv-6 2,261,184.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ltjax.models import registry

glorot_normal = nn.initializers.glorot_normal()

# Conv filters per layer; a 2x2 max-pool follows every pair.
CONV_PLANS = {
    "conv2": (64, 64),
    "conv4": (64, 64, 128, 128),
    "conv6": (64, 64, 128, 128, 256, 256),
}


class ConvNet(nn.Module):
  """`filters` 3x3 conv layers (pool after each pair), dense ReLU `hidden` layers, output `out`.

  Layers are named conv1.., fc1.., out. `dropout` > 0 applies dropout after each hidden dense
  layer in training mode (it needs a 'dropout' rng then).
  """

  filters: Sequence[int]
  num_classes: int = 10
  hidden: Sequence[int] = (256, 256)
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(jnp.float32)
    for i, f in enumerate(self.filters):
      x = nn.relu(nn.Conv(f, (3, 3), padding="SAME", kernel_init=glorot_normal,
                          name=f"conv{i + 1}")(x))
      if i % 2 == 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, kernel_init=glorot_normal, name=f"fc{i + 1}")(x))
      if self.dropout > 0.0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=glorot_normal, name="out")(x)


def build_conv(plan: str, num_classes: int = 10, dropout: float = 0.0, **overrides) -> ConvNet:
  """Conv-2/4/6 by plan name; `overrides` set other ConvNet fields (e.g. `hidden`)."""
  return ConvNet(filters=CONV_PLANS[plan], num_classes=num_classes, dropout=dropout, **overrides)


conv2 = functools.partial(build_conv, "conv2")
conv4 = functools.partial(build_conv, "conv4")
conv6 = functools.partial(build_conv, "conv6")

_COUNTS = {"conv2": "4,300,992", "conv4": "2,425,024", "conv6": "2,261,184"}
for _plan in CONV_PLANS:
  _depth = _plan[-1]
  registry.register(registry.ModelSpec(
      name=_plan, build=functools.partial(build_conv, _plan), output_layer="out",
      description=f"Conv-{_depth} (CIFAR-10): 3x3 convs, fc 256-256-10, {_COUNTS[_plan]} prunable "
                  "weights on 32x32x3"))
  registry.register(registry.ModelSpec(
      name=f"{_plan}_dropout", build=functools.partial(build_conv, _plan, dropout=0.5),
      output_layer="out", description=f"Conv-{_depth} with dropout 0.5 after the hidden fc layers"))
