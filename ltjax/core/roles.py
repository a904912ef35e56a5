"""The layer-role vocabulary: what masks, pruning and tickets know about a parameter leaf.

A model declares each parameter leaf's role (models/registry.py derives them with `kernel_roles`
by default); pruning rates attach to roles, so the core never matches layer names.
"""

from __future__ import annotations

from typing import Any

import jax

# Roles a pruning rate can be attached to; FIXED leaves (biases, norm scales) are never pruned.
CONV, FC, OUTPUT, FIXED = "conv", "fc", "output", "fixed"
PRUNABLE = (CONV, FC, OUTPUT)
ROLES = PRUNABLE + (FIXED,)


def kernel_roles(params: Any, output_layer: str) -> Any:
  """The default rule: leaves named `kernel` are prunable; 4-D kernels are conv, 2-D are fc."""

  def role(path, leaf):
    names = [getattr(k, "key", getattr(k, "name", str(k))) for k in path]
    if not names or names[-1] != "kernel":
      return FIXED
    if output_layer in names[:-1]:
      return OUTPUT
    return CONV if leaf.ndim == 4 else FC

  return jax.tree_util.tree_map_with_path(role, params)
