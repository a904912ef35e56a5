"""CIFAR VGG-11/16/19 with batch norm, as in Frankle's open_lth (`cifar_vgg_N`).

Each conv module is a 3x3 conv (padding 1, with bias) -> BatchNorm -> ReLU; a 2x2 max-pool
separates the stages (none after the last stage); then global average pooling and ONE dense
output layer `out` (512 -> num_classes). On 32x32 inputs the last stage is 2x2, so the global
average equals open_lth's AvgPool2d(2).

Initialization follows open_lth's defaults for these models, because the deep-network results
(warmup, rewinding) were obtained with them:
  - conv and output kernels: He/Kaiming normal, fan-in, untruncated (PyTorch's
    `kaiming_normal_`); not the paper's Glorot, which is for the small nets;
  - BatchNorm scale ~ U[0, 1) and shift 0 (open_lth's `batchnorm_init='uniform'`);
    build kwarg `bn_init='ones'` gives the conventional init;
  - biases 0 (PyTorch would draw them uniformly; they are never pruned, and the conv bias before
    a BatchNorm gets no gradient in training mode anyway).
BatchNorm matches PyTorch's: momentum 0.1 in PyTorch's convention (0.9 here), epsilon 1e-5;
running statistics live in the 'batch_stats' collection.

Prunable weights (3x3 conv kernels + the 512x10 output kernel): VGG-11 9,222,848;
VGG-16 14,715,584; VGG-19 20,024,000.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence, Union

import flax.linen as nn
import jax.numpy as jnp

from ltjax.models import registry
from ltjax.models.resnet import batch_norm, he_normal

POOL = "M"
VGG_PLANS = {
    "vgg11": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    "vgg16": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
              512, 512, 512),
    "vgg19": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL,
              512, 512, 512, 512),
}


class VGG(nn.Module):
  """Conv-BN-ReLU modules per `plan` ('M' = 2x2 max-pool), global average pool, dense `out`.

  Layers are named conv1/bn1, conv2/bn2, ..., out.
  """

  plan: Sequence[Union[int, str]]
  num_classes: int = 10
  kernel_init: Callable = he_normal
  bn_init: str = "uniform"  # or 'ones'; see resnet.BN_SCALE_INITS

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(jnp.float32)
    i = 0
    for spec in self.plan:
      if spec == POOL:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        continue
      i += 1
      x = nn.Conv(spec, (3, 3), padding=1, kernel_init=self.kernel_init, name=f"conv{i}")(x)
      x = batch_norm(train, self.bn_init, f"bn{i}")(x)
      x = nn.relu(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init, name="out")(x)


def build_vgg(plan: str, num_classes: int = 10, **overrides) -> VGG:
  """VGG by plan name; `overrides` set other VGG fields (e.g. `bn_init`)."""
  return VGG(plan=VGG_PLANS[plan], num_classes=num_classes, **overrides)


vgg11 = functools.partial(build_vgg, "vgg11")
vgg16 = functools.partial(build_vgg, "vgg16")
vgg19 = functools.partial(build_vgg, "vgg19")

_COUNTS = {"vgg11": "9,222,848", "vgg16": "14,715,584", "vgg19": "20,024,000"}
for _plan in VGG_PLANS:
  registry.register(registry.ModelSpec(
      name=_plan, build=functools.partial(build_vgg, _plan), output_layer="out",
      description=f"VGG-{_plan[3:]} for CIFAR (open_lth cifar_vgg, batch norm, avgpool, one fc), "
                  f"{_COUNTS[_plan]} prunable weights"))
