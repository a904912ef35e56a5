"""CIFAR ResNet-20 (He et al. 2016, section 4.2) as in Frankle's open_lth (`cifar_resnet_20`).

A 3x3 conv of 16 filters with BatchNorm and ReLU, then three stages of three basic blocks with
16, 32 and 64 filters (times the width multiplier `width`); the first block of stages 2 and 3
has stride 2. A basic block is conv-BN-ReLU-conv-BN plus the shortcut, then ReLU; the shortcut
is the identity, or a 1x1 strided conv + BN projection where the shape changes (open_lth's
choice, not the parameter-free option A of the ResNet paper). Then global average pooling and a
dense output layer `out`.

Convs have no bias (a BatchNorm follows each). The 1x1 projection kernels are 4-D, so the
default role rule makes them prunable 'conv' layers, as open_lth prunes them.

Initialization follows open_lth's defaults, under which the paper's ResNet results (warmup,
rewinding) were obtained: He/Kaiming normal kernels (fan-in, untruncated, as PyTorch's
`kaiming_normal_`), BatchNorm scale ~ U[0, 1) and shift 0 (`batchnorm_init='uniform'`;
build kwarg `bn_init='ones'` gives the conventional init), output bias 0.
BatchNorm: momentum 0.9 (PyTorch's 0.1), epsilon 1e-5; statistics in 'batch_stats'.

Prunable weights at width 1: 270,896 (270,256 conv incl. 2,560 in the projections, 640 output).
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from ltjax.models import registry

# PyTorch's kaiming_normal_ (fan_in, gain sqrt(2), plain normal); flax's he_normal is truncated.
he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

# BatchNorm scale initializers by name (strings, so configs can pick one): open_lth's default
# 'uniform' draws U[0, 1); 'ones' is the conventional init (open_lth's 'fixed').
BN_SCALE_INITS = {"uniform": nn.initializers.uniform(scale=1.0), "ones": nn.initializers.ones}


def batch_norm(train: bool, bn_init: str, name: str) -> nn.BatchNorm:
  """PyTorch-equivalent BatchNorm (momentum 0.1 there, 0.9 here; eps 1e-5), shift 0."""
  if bn_init not in BN_SCALE_INITS:
    raise ValueError(f"unknown bn_init {bn_init!r}; known: {', '.join(BN_SCALE_INITS)}")
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      scale_init=BN_SCALE_INITS[bn_init], name=name)


class BasicBlock(nn.Module):
  """Two 3x3 conv-BN layers and a (projected where the shape changes) shortcut."""

  filters: int
  stride: int = 1
  kernel_init: Callable = he_normal
  bn_init: str = "uniform"

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = functools.partial(batch_norm, train, self.bn_init)
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=self.kernel_init)
    # Explicit padding 1 (as PyTorch), not SAME: with stride 2, SAME pads only after, which
    # would shift the conv's sampling grid off the 1x1 projection's (pixels 0, 2, 4, ...).
    y = conv(self.filters, (3, 3), strides=self.stride, padding=1, name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y))
    y = conv(self.filters, (3, 3), padding=1, name="conv2")(y)
    y = norm(name="bn2")(y)
    if self.stride != 1 or x.shape[-1] != self.filters:
      x = conv(self.filters, (1, 1), strides=self.stride, padding="VALID", name="shortcut_conv")(x)
      x = norm(name="shortcut_bn")(x)
    return nn.relu(y + x)


class CifarResNet(nn.Module):
  """ResNet-`depth` for CIFAR (depth 6n + 2: n blocks per stage).

  Layers are named conv, bn, stage{1,2,3}_block{1..n} (conv1/bn1/conv2/bn2[/shortcut_*]), out.
  """

  num_classes: int = 10
  depth: int = 20
  width: int = 1
  kernel_init: Callable = he_normal
  bn_init: str = "uniform"

  @nn.compact
  def __call__(self, x, train: bool = False):
    if (self.depth - 2) % 6 or self.depth < 8:
      raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {self.depth}")
    if self.width < 1:
      raise ValueError(f"width multiplier must be >= 1, got {self.width}")
    blocks = (self.depth - 2) // 6
    x = x.astype(jnp.float32)
    x = nn.Conv(16 * self.width, (3, 3), padding=1, use_bias=False, kernel_init=self.kernel_init,
                name="conv")(x)
    x = batch_norm(train, self.bn_init, "bn")(x)
    x = nn.relu(x)
    for s, filters in enumerate((16, 32, 64)):
      for b in range(blocks):
        x = BasicBlock(filters * self.width, stride=2 if s > 0 and b == 0 else 1,
                       kernel_init=self.kernel_init, bn_init=self.bn_init,
                       name=f"stage{s + 1}_block{b + 1}")(x, train=train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init, name="out")(x)


def resnet20(num_classes: int = 10, width: int = 1, **overrides) -> CifarResNet:
  """ResNet-20; `width` multiplies every layer's filters; `overrides` set other fields."""
  return CifarResNet(num_classes=num_classes, width=width, **overrides)


registry.register(registry.ModelSpec(
    name="resnet20", build=resnet20, output_layer="out",
    description="ResNet-20 for CIFAR (open_lth cifar_resnet_20, projection shortcuts), "
                "270,896 prunable weights at width 1"))
