"""LeNet-300-100 on MNIST, the paper's schedule: Adam 1.2e-3, batch 60, 50K iterations, fc 20% /
out 10% per round, 5 trials, random reinitialization drawn 3 times per trial, random-mask control."""

from ltjax.configs import base


def get_config():
  c = base.get_config()
  c.reinit_draws = 3
  return c
