"""Networks of your own, as ltjax sees them: plain flax modules, no registration, no `train` flag.

ltjax infers each parameter's role (Dense and Conv kernels are pruned, the last layer called is
the output layer with its own rate, biases and norms stay), so these need nothing else. The
lottery binary names them by import path:

  python -m experiments.lottery --config=lenet_quick --config.model=examples.networks:SmallCNN \
      --config.model_kwargs.features=8 --workdir=/tmp/small_cnn
"""

import flax.linen as nn


class TwoLayerMLP(nn.Module):
  """Two hidden ReLU layers and a linear readout."""
  num_classes: int
  hidden: int = 64

  @nn.compact
  def __call__(self, x):
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(self.num_classes)(x)


class SmallCNN(nn.Module):
  """Two 3x3 convolutions with pooling, then a linear readout (for 28x28 images and the like)."""
  num_classes: int
  features: int = 16

  @nn.compact
  def __call__(self, x):
    for i in range(2):
      x = nn.relu(nn.Conv(self.features * (i + 1), (3, 3))(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))
