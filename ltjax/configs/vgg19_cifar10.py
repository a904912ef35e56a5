"""VGG-19 on CIFAR-10 with the warmup the paper needs to find tickets: SGD momentum 0.9, weight
decay 1e-4, batch 64, 112,480 iterations (160 epochs of 45,000), lr warmed up over 10K iterations
to 0.1, x0.1 at epochs 80 and 120; conv layers pruned 20% per round globally, fc not pruned."""

from ltjax.configs import base


def get_config():
  c = base.get_config()
  c.name = "vgg19_cifar10"
  c.model = "vgg19"
  c.dataset = "cifar10"
  c.train.optimizer = "sgd"
  c.train.lr = 0.1
  c.train.momentum = 0.9
  c.train.weight_decay = 1e-4
  c.train.warmup_steps = 10_000
  c.train.batch_size = 64
  c.train.steps = 112_480
  c.train.milestones = (80 * 45_000 // 64, 120 * 45_000 // 64)  # epochs 80 and 120
  c.train.eval_every = 1_000
  c.prune.scope = "global"
  c.prune.conv_rate = 0.2
  c.prune.fc_rate = 0.0
  c.prune.output_rate = 0.0
  c.prune.rounds = 20
  return c
