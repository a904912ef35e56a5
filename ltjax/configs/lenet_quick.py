"""A quick, meaningful LeNet-300-100/MNIST run (minutes on a laptop CPU): 3 trials, 4 rounds (down
to 41% of weights), 2,000 iterations per round, both controls."""

from ltjax.configs import base


def get_config():
  c = base.get_config()
  c.name = "lenet_quick"
  c.trials = 3
  c.prune.rounds = 4
  c.train.steps = 2000
  return c
