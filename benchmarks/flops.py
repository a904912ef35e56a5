"""FLOPs counted from shapes: the matmuls and convolutions a traced function performs.

XLA's cost analysis depends on the backend (on GPU it undercounts LeNet's train step by a third,
BUILD_NOTES), so a fraction of the matmul ceiling would not mean the same on every device. This
walks the function's jaxpr instead and counts 2 FLOPs per multiply-add of every `dot_general` and
`conv_general_dilated`, from their operand and result shapes; elementwise work (activations, the
optimizer, masking) is not counted, as the ceiling it is compared with is a matmul's.

Nested programs count as they run: a `scan` body times its length; a `cond` counts its costliest
branch (an upper bound for a branch taken now and then, such as a mask update); a `while` body
counts once, since its trip count is not in the shapes.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.extend import core as jex_core


def shape_flops(fn: Callable, *args: Any, **kwargs: Any) -> float:
  """FLOPs of one call of `fn(*args, **kwargs)` (arrays or ShapeDtypeStructs), counted from shapes."""
  return float(_jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs).jaxpr))


def _jaxpr_flops(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
    elif name == "conv_general_dilated":
      rhs = eqn.invars[1].aval.shape
      spec = eqn.params["dimension_numbers"].rhs_spec  # (out features, in features, *spatial)
      per_output = rhs[spec[1]] * math.prod(rhs[d] for d in spec[2:])
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * per_output
    elif name == "cond":
      total += max(_jaxpr_flops(b.jaxpr) for b in eqn.params["branches"])
    elif name == "scan":
      total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"].jaxpr)
    else:
      total += sum(_jaxpr_flops(j) for j in _nested(eqn.params))
  return total


def _nested(params) -> list:
  """The jaxprs inside an equation's parameters (pjit, custom_jvp/vjp, while, remat, ...)."""
  out = []
  for v in params.values():
    for x in (v if isinstance(v, (tuple, list)) else (v,)):
      if isinstance(x, jex_core.ClosedJaxpr):
        out.append(x.jaxpr)
      elif isinstance(x, jex_core.Jaxpr):
        out.append(x)
  return out
