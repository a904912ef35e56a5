"""One-off programs: those that run once per run or round, compiled for a short compile.

XLA:CPU spent as long compiling LeNet's initializer (a few threefry draws) as its training program.
Initializers, start states, the line-up's assembly, padding and gathers compile with less LLVM
optimization (level 1) and XLA's elemental emitters on CPU: LeNet's initializer in 0.5 s instead
of 2.2 s (0.7 s at level 1 alone), its output bitwise the same (tests/test_oneoff.py). Training
and evaluation keep the defaults: at level 1 they compiled no faster, at level 0 a training step
ran 2.8x slower, and with the elemental emitters 200 steps compiled in half the time but ran 2-3x
slower.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax

# XLA's elemental emitters instead of its fusion emitters: half the compile time, the same bits,
# slower code (2-3x for a training loop) that a program run once does not feel.
OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


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
