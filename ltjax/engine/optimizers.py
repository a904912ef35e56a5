"""Optimizers and learning-rate schedules from plain settings (optax underneath)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
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


@dataclasses.dataclass(frozen=True)
class Stretch:
  """The run's warmup and decay steps at the same fractions of a ticket's own budget.

  Liu et al.'s Scratch-B trains longer on the same schedule, stretched: with milestones at 50% and
  75% of `steps`, a ticket whose last step is 2 x `steps` decays at 100% and 150% of `steps`.
  `factor` is the ticket's rate over the run's at a step, to scale the optimizer's update by.
  """
  warmup_steps: int
  milestones: tuple[int, ...]
  decay: float
  steps: int  # the budget the run's schedule is written for (train.steps)

  def factor(self, step, last_step) -> jax.Array:
    """Stretched rate / run's rate at `step` for a ticket that trains until `last_step`: exactly 1.0
    where `last_step` is `steps`, and 1.0 where the run's rate is 0 (warmup's first step)."""
    step, last = jnp.asarray(step, jnp.int32), jnp.asarray(last_step, jnp.int32)
    whole, part = last // self.steps, last % self.steps

    def own(b: int) -> jax.Array:
      # b * last / steps as whole steps: exact in integers for whole multiples of the budget (no
      # int32 overflow from b * last), the rest rounded down from float32.
      return b * whole + jnp.floor(b * part.astype(jnp.float32) / self.steps).astype(jnp.int32)

    run = self._rate(step, lambda b: b)
    ratio = self._rate(step, own) / jnp.where(run > 0, run, 1.0)
    # Compiled, an unstretched ticket's two rates need not round alike (a constant divisor becomes
    # a reciprocal): its factor is 1 by definition, not by arithmetic.
    return jnp.where((last == self.steps) | (run == 0), 1.0, ratio)

  def _rate(self, step, at) -> jax.Array:
    """The schedule's rate relative to its peak, with each breakpoint b moved to at(b)."""
    rate = jnp.float32(1.0)
    for m in self.milestones:
      rate = jnp.where(step >= at(m), rate * self.decay, rate)
    if self.warmup_steps:
      rate = rate * jnp.clip(step.astype(jnp.float32) / jnp.asarray(at(self.warmup_steps), jnp.float32), 0.0, 1.0)
    return rate


def stretch(warmup_steps: int, milestones: Sequence[int], decay: float, steps: int) -> Stretch | None:
  """The Stretch of a run's schedule, or None where its rate is constant (nothing to stretch)."""
  milestones = tuple(int(m) for m in milestones if m > 0)
  if not warmup_steps and not milestones:
    return None
  if not 0 < decay <= 1 or steps < 1:
    raise ValueError(f"a schedule to stretch needs decay in (0, 1] and steps >= 1, got {decay} and {steps}")
  return Stretch(int(warmup_steps), milestones, float(decay), int(steps))
