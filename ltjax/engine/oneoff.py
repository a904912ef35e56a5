"""One-off programs: those that run once per run or round, compiled for a short compile.

XLA:CPU spent as long compiling LeNet's initializer (a few threefry draws) as its training program.
Initializers, start states, the line-up's assembly, padding and gathers compile with less LLVM
optimization on CPU: the initializer in 0.8 s instead of 2.3 s, its output bitwise the same
(tests/test_oneoff.py). Training and evaluation keep the default: at level 1 they compiled no
faster and at level 0 a training step ran 2.8x slower.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax

OPTIONS = {"xla_backend_optimization_level": 1}


def jit(fn: Callable, **jit_kwargs) -> Callable:
  """`jax.jit(fn, **jit_kwargs)` compiled quickly on CPU (`OPTIONS`), as usual elsewhere. The
  backend is read at the first call (after the run has chosen its devices); inside another trace
  (`eval_shape`, `vmap`, an enclosing jit) `fn` is traced into that program instead."""
  jitted = []

  @functools.wraps(fn)
  def call(*args, **kwargs):
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs))):
      return fn(*args, **kwargs)
    if not jitted:
      jitted.append(jax.jit(fn, compiler_options=OPTIONS if jax.default_backend() == "cpu" else None,
                            **jit_kwargs))
    return jitted[0](*args, **kwargs)
  return call
