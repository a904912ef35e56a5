"""When sparsity changes inside one training run: the schedules of gradual and dynamic pruning.

- `Polynomial`: Zhu & Gupta (2017)'s gradual magnitude pruning, sparsity s_t = s_f + (s_i - s_f)
  (1 - (t - t_0) / (n ΔT))^3, updated every ΔT steps from t_0 to t_0 + n ΔT (optax's
  `polynomial_schedule` is that formula).
- `CosineDrop`: RigL's fraction of live weights to drop and regrow at an update, α/2 (1 +
  cos(π t / T_end)) (optax's `cosine_decay_schedule`), every ΔT steps until T_end (Evci et al.
  2020). SET uses the same schedule with its own α.

Both are evaluated on the host at the update steps, so the counts a compiled loop applies are
exact integers computed once per run (`keep_table`); IMP's rounds and one-shot pruning need no
schedule inside a run (`ltjax.core.pruning`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import optax

from ltjax.core.pruning import PruningError


def _check_steps(begin: int, end: int, every: int, steps: int | None, what: str) -> None:
  for name, v in (("begin", begin), ("end", end), ("every", every)):
    if not isinstance(v, int) or isinstance(v, bool):
      raise PruningError(f"{what}: {name} must be an integer step, got {v!r}")
  if begin < 0 or end <= begin:
    raise PruningError(f"{what}: needs 0 <= begin < end, got begin={begin}, end={end}")
  if every < 1 or every > end - begin:
    raise PruningError(f"{what}: the update interval ΔT={every} must be in [1, {end - begin}] "
                       f"(the steps from begin={begin} to end={end})")
  if steps is not None and end > steps:
    raise PruningError(f"{what}: end={end} is after the run's last step ({steps})")


@dataclasses.dataclass(frozen=True)
class Polynomial:
  """Gradual pruning from sparsity `initial` at step `begin` to `final` at `end`, every `every`."""
  initial: float
  final: float
  begin: int
  end: int
  every: int
  power: float = 3.0

  def check(self, steps: int | None = None) -> "Polynomial":
    for name, v in (("initial", self.initial), ("final", self.final)):
      if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v < 1.0):
        raise PruningError(f"polynomial schedule: {name} sparsity must be in [0, 1), got {v!r}")
    if self.final < self.initial:
      raise PruningError(f"polynomial schedule: final sparsity {self.final} is below the initial {self.initial}")
    if not (math.isfinite(self.power) and self.power > 0):
      raise PruningError(f"polynomial schedule: power must be > 0, got {self.power!r}")
    _check_steps(self.begin, self.end, self.every, steps, "polynomial schedule")
    return self

  def update_steps(self) -> np.ndarray:
    """t_0, t_0 + ΔT, ... up to `end`, and `end` itself (the schedule ends on its target)."""
    steps = np.arange(self.begin, self.end + 1, self.every)
    return steps if steps[-1] == self.end else np.append(steps, self.end)

  def sparsity(self, step) -> np.ndarray:
    """The sparsity the schedule asks for at `step` (an update step or not: the last update's)."""
    fn = optax.polynomial_schedule(self.initial, self.final, self.power, self.end - self.begin, self.begin)
    steps = self.update_steps()
    last = steps[np.clip(np.searchsorted(steps, np.asarray(step), side="right") - 1, 0, None)]
    return np.where(np.asarray(step) < self.begin, self.initial,
                    np.asarray(fn(last), np.float64))


@dataclasses.dataclass(frozen=True)
class CosineDrop:
  """The fraction of each layer's live weights dropped (and regrown) at an update."""
  fraction: float
  end: int
  every: int
  begin: int = 0

  def check(self, steps: int | None = None) -> "CosineDrop":
    if not (isinstance(self.fraction, (int, float)) and math.isfinite(self.fraction)
            and 0.0 < self.fraction < 1.0):
      raise PruningError(f"drop fraction must be in (0, 1), got {self.fraction!r}")
    _check_steps(self.begin, self.end, self.every, steps, "drop schedule")
    return self

  def update_steps(self) -> np.ndarray:
    """Every ΔT from `begin` (after step 0: a mask is updated once training has moved it), before `end`."""
    first = self.begin if self.begin > 0 else self.every
    return np.arange(first, self.end, self.every)

  def drop_fraction(self, step) -> np.ndarray:
    fn = optax.cosine_decay_schedule(self.fraction, self.end)
    return np.asarray(fn(np.asarray(step)), np.float64)


def keep_table(sizes: np.ndarray, sparsities: np.ndarray) -> np.ndarray:
  """[updates, layers] exact weights kept: round((1 - s) * size), half to even, at least 1."""
  sizes = np.asarray(sizes, np.int64)
  keep = np.rint((1.0 - np.asarray(sparsities, np.float64))[:, None] * sizes[None, :]).astype(np.int64)
  return np.clip(keep, 1, sizes[None, :])


def drop_table(alive: np.ndarray, fractions: np.ndarray) -> np.ndarray:
  """[updates, layers] weights dropped (and regrown) at each update: round(f * alive)."""
  alive = np.asarray(alive, np.int64)
  return np.rint(np.asarray(fractions, np.float64)[:, None] * alive[None, :]).astype(np.int64)
