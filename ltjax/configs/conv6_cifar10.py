"""Conv-6 on CIFAR-10, the paper's setting: Adam 3e-4, batch 60, 30,000 iterations,
conv 15% / fc 20% / output 10% per round. Dropout variant: --config.model=conv6_dropout."""

from ltjax.configs import base


def get_config():
  c = base.get_config()
  c.name = "conv6_cifar10"
  c.model = "conv6"
  c.dataset = "cifar10"
  c.train.lr = 3e-4
  c.train.steps = 30_000
  c.prune.conv_rate = 0.15
  c.prune.rounds = 20
  return c
