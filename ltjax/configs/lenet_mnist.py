"""LeNet-300-100 on MNIST, the paper's schedule: Adam 1.2e-3, batch 60, 50K iterations, fc 20% / out 10%."""

from ltjax.configs import base


def get_config():
  return base.get_config()
