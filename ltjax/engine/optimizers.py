"""Optimizers and learning-rate schedules from plain settings (optax underneath)."""

from __future__ import annotations

import functools
from typing import Sequence

import optax

NAMES = ("adam", "adamw", "sgd")


def schedule(lr: float, warmup_steps: int = 0, milestones: Sequence[int] = (),
             decay: float = 0.1) -> optax.Schedule:
  """Linear warmup from 0 to `lr` over `warmup_steps`, then x`decay` at each milestone step."""
  if lr <= 0:
    raise ValueError(f"learning rate must be positive, got {lr}")
  if warmup_steps < 0:
    raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
  base = optax.piecewise_constant_schedule(lr, {int(m): decay for m in milestones})
  if not warmup_steps:
    return base
  warm = optax.linear_schedule(0.0, lr, warmup_steps)
  return lambda step: base(step) * warm(step) / lr


def make(name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
         warmup_steps: int = 0, milestones: Sequence[int] = (), decay: float = 0.1,
         nesterov: bool = False) -> optax.GradientTransformation:
  """`adam` / `adamw` / `sgd` (momentum) with an optional warmup + step schedule.

  The same settings give the same object: a Trainer built again for the same config then equals
  the first, so its compiled programs are reused in the process (a sweep's points one after
  another, a notebook's rerun) instead of traced and lowered again.
  """
  return _make(name, lr, momentum, weight_decay, warmup_steps, tuple(milestones), decay, nesterov)


@functools.lru_cache(maxsize=64)
def _make(name, lr, momentum, weight_decay, warmup_steps, milestones, decay, nesterov):
  lr_fn = schedule(lr, warmup_steps, milestones, decay)
  if name == "adam":
    tx = optax.adam(lr_fn)
  elif name == "adamw":
    return optax.adamw(lr_fn, weight_decay=weight_decay)
  elif name == "sgd":
    tx = optax.sgd(lr_fn, momentum=momentum or None, nesterov=nesterov)
  else:
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(NAMES)}")
  if weight_decay:
    # Coupled L2 (added to the gradient), as in the paper's SGD setups.
    tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
  return tx
