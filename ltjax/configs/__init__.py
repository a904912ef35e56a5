"""Paper presets as data: `get(name)` returns a fresh ConfigDict."""

import importlib

PRESETS = ("lenet_quick", "lenet_mnist", "conv2_cifar10", "conv4_cifar10", "conv6_cifar10",
           "vgg19_cifar10", "resnet20_cifar10")  # the XOR experiment has its own binary


def available() -> list[str]:
  out = []
  for name in PRESETS:
    try:
      importlib.import_module(f"ltjax.configs.{name}")
      out.append(name)
    except ModuleNotFoundError:
      pass
  return out


def get(name: str):
  if name not in available():
    raise KeyError(f"unknown preset {name!r}; presets: {', '.join(available())}")
  return importlib.import_module(f"ltjax.configs.{name}").get_config()
