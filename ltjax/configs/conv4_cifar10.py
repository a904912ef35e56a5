"""Conv-4 on CIFAR-10, the paper's setting: Adam 3e-4, batch 60, 25,000 iterations,
conv 10% / fc 20% / output 10% per round. Dropout variant: --config.model=conv4_dropout."""

from ltjax.configs import base


def get_config():
  c = base.get_config()
  c.name = "conv4_cifar10"
  c.model = "conv4"
  c.dataset = "cifar10"
  c.train.lr = 3e-4
  c.train.steps = 25_000
  c.prune.conv_rate = 0.1
  c.prune.rounds = 20
  return c
