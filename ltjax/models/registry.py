"""Model registry: a name maps to a `ModelSpec` that builds a linen module and declares its layers.

The spec, not the pruning code, says which parameter leaves are prunable and which layer is the
output layer (it gets its own pruning rate), so new architectures drop in without name matching
anywhere else.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn

from ltjax.core.roles import CONV, FC, FIXED, OUTPUT, PRUNABLE, kernel_roles  # noqa: F401 (re-exported)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A buildable network and the declaration of its prunable layers.

  Attributes:
    name: registry name.
    build: `build(num_classes, **overrides) -> nn.Module`; the module is called as
      `module.apply(variables, x, train=bool, rngs=...)` on a batch of NHWC (or N,features) inputs.
    output_layer: name of the submodule that produces the logits.
    description: one line for `--help` style listings.
  """

  name: str
  build: Callable[..., nn.Module]
  output_layer: str
  description: str = ""

  def layer_roles(self, params: Any) -> Any:
    """Pytree of role strings with `params`' structure: conv/fc/output for kernels, fixed otherwise."""
    return kernel_roles(params, self.output_layer)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
  if spec.name in _REGISTRY:
    raise ValueError(f"model {spec.name!r} is already registered")
  _REGISTRY[spec.name] = spec
  return spec


def get(name: str) -> ModelSpec:
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
  return sorted(_REGISTRY)
