"""Conv-2 on CIFAR-10, the paper's setting: Adam 2e-4, batch 60, 20,000 iterations,
conv 10% / fc 20% / output 10% per round. Dropout variant: --config.model=conv2_dropout."""

from ltjax.configs import base


def get_config():
  c = base.get_config()
  c.name = "conv2_cifar10"
  c.model = "conv2"
  c.dataset = "cifar10"
  c.train.lr = 2e-4
  c.train.steps = 20_000
  c.prune.conv_rate = 0.1
  c.prune.rounds = 20
  return c
