"""Early stopping by minimum validation loss, and the per-evaluation curves of a round.

The tracker carries, per ticket, the best point so far and the weights at that point, so the
test set is evaluated once per round (at the early-stop iteration) instead of at every eval.
A non-finite loss marks the ticket diverged; it never becomes the best point and cannot affect
other tickets.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


@flax.struct.dataclass
class EarlyStop:
  """Best-validation-loss bookkeeping, with the parameters at that point for a later test eval."""
  loss: jax.Array        # minimum validation loss so far (inf before the first eval)
  step: jax.Array        # iteration at which it was reached (-1 before the first eval)
  accuracy: jax.Array    # validation accuracy at that iteration
  params: PyTree
  model_state: PyTree
  diverged: jax.Array    # a non-finite training or validation loss was seen


@flax.struct.dataclass
class Curves:
  """Per-eval-point metrics, arrays shaped [num_evals, K]."""
  step: jax.Array
  train_loss: jax.Array  # mean training loss over the interval
  val_loss: jax.Array
  val_accuracy: jax.Array


@jax.jit
def new_tracker(params: PyTree, model_state: PyTree) -> EarlyStop:
  """A tracker for stacked tickets that has seen no evaluation yet."""
  k = int(jax.tree.leaves(params)[0].shape[0])
  return EarlyStop(loss=jnp.full((k,), jnp.inf, jnp.float32), step=jnp.full((k,), -1, jnp.int32),
                   accuracy=jnp.zeros((k,), jnp.float32), params=jax.tree.map(jnp.copy, params),
                   model_state=jax.tree.map(jnp.copy, model_state),
                   diverged=jnp.zeros((k,), jnp.bool_))


def update(best: EarlyStop, params, model_state, train_loss, val_loss, val_accuracy, step) -> EarlyStop:
  """One ticket's tracker after a validation at `step`."""
  finite = jnp.isfinite(val_loss) & jnp.isfinite(train_loss)
  better = finite & (val_loss < best.loss)
  pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)  # noqa: E731
  return EarlyStop(loss=pick(val_loss, best.loss), step=pick(step, best.step),
                   accuracy=pick(val_accuracy, best.accuracy), params=pick(params, best.params),
                   model_state=pick(model_state, best.model_state),
                   diverged=best.diverged | ~finite)


def concat_curves(curves: list[Curves], axis: int = 0) -> Curves:
  """Curves of consecutive calls (axis 0) or of ticket groups (axis 1) as one, on the host (they
  are small, and numpy compiles no program per shape)."""
  if not curves:
    empty = np.zeros((0, 0), np.float32)
    return Curves(step=empty.astype(np.int32), train_loss=empty, val_loss=empty, val_accuracy=empty)
  return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=axis), *curves)
