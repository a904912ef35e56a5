"""Linen modules and the registry that names them; importing this package registers every model."""

from ltjax.models import conv, mlp, resnet, vgg  # noqa: F401  (registers)
from ltjax.models.registry import (
                                   CONV,
                                   FC,
                                   FIXED,
                                   OUTPUT,
                                   PRUNABLE_KINDS,
                                   ModelSpec,
                                   get,
                                   kernel_kinds,
                                   names,
                                   register,
)

__all__ = ["CONV", "FC", "FIXED", "OUTPUT", "PRUNABLE_KINDS", "ModelSpec", "get", "kernel_kinds",
           "names", "register"]
