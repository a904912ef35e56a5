"""ResNet-20 on CIFAR-10 with the learning-rate warmup the paper needs to find tickets: SGD
momentum 0.9, weight decay 1e-4, batch 128, 30K iterations, lr warmed up linearly over 20K
iterations to 0.03, x0.1 at 20K and 25K; conv layers pruned 20% per round globally, fc not
pruned. The standard schedule without warmup: --config.train.lr=0.1 --config.train.warmup_steps=0."""

from ltjax.configs import base


def get_config():
  c = base.get_config()
  c.name = "resnet20_cifar10"
  c.model = "resnet20"
  c.dataset = "cifar10"
  c.train.optimizer = "sgd"
  c.train.lr = 0.03
  c.train.momentum = 0.9
  c.train.weight_decay = 1e-4
  c.train.warmup_steps = 20_000
  c.train.milestones = (20_000, 25_000)
  c.train.batch_size = 128
  c.train.steps = 30_000
  c.train.eval_every = 500  # evaluation of 5,000 images every 100 steps would double a round
  c.prune.scope = "global"
  c.prune.conv_rate = 0.2
  c.prune.fc_rate = 0.0
  c.prune.output_rate = 0.0
  c.prune.rounds = 20
  return c
