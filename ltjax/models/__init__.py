"""Networks: the registered presets (LeNet, Conv-2/4/6, VGG, ResNet) and any network of yours.

A registered name, an import path 'package.module:Factory', a linen Module or an (init, apply)
pair all resolve (`resolve`) to what the trainer calls and each parameter leaf's role
(`ltjax.models.network`); importing this package registers the presets.
"""

from ltjax.models import conv, mlp, resnet, vgg  # noqa: F401  (registers)
from ltjax.models.network import (
           ModelError,
           adapt,
           describe,
           infer_roles,
           load_factory,
           resolve,
)
from ltjax.models.registry import ModelSpec, get, names, register

__all__ = ["ModelError", "ModelSpec", "adapt", "describe", "get", "infer_roles", "load_factory",
           "names", "register", "resolve"]
