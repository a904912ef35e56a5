"""The ticket axis: K tickets stacked on a leading axis of every pytree, run as one program.

One knob, `ticket_batch`, picks how the axis is executed, without forking any code:
  None  -> `vmap` over all K tickets (best where batched kernels are fast: GPU/TPU, dense on CPU);
  1     -> a sequential `lax.map` (XLA's CPU convolutions are ~3x slower vmapped than looped);
  b > 1 -> `lax.map` over chunks of b vmapped tickets.
Sharding the axis over a device mesh slots in here.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax

PyTree = Any


def stack(trees: Sequence[PyTree]) -> PyTree:
  """[tree_0, ..., tree_{K-1}] -> one tree with a leading ticket axis of size K."""
  return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *trees)


def unstack(tree: PyTree) -> list[PyTree]:
  n = num_tickets(tree)
  return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(n)]


def take(tree: PyTree, index) -> PyTree:
  """Select tickets (an int or an index array) from a stacked tree."""
  return jax.tree.map(lambda x: x[index], tree)


def num_tickets(tree: PyTree) -> int:
  return int(jax.tree.leaves(tree)[0].shape[0])


def ticket_map(fn: Callable, in_axes: Sequence[int | None],
               ticket_batch: int | None = None) -> Callable:
  """Lift a single-ticket `fn` to stacked inputs; `in_axes[i]` is 0 (stacked) or None (shared)."""
  if any(ax not in (0, None) for ax in in_axes):
    raise ValueError(f"in_axes entries must be 0 or None, got {in_axes}")
  if ticket_batch is None:
    return jax.vmap(fn, in_axes=tuple(in_axes))
  if ticket_batch < 1:
    raise ValueError(f"ticket_batch must be None or >= 1, got {ticket_batch}")

  def mapped(*args):
    stacked = tuple(a for a, ax in zip(args, in_axes) if ax == 0)

    def one(xs):
      it = iter(xs)
      return fn(*(next(it) if ax == 0 else a for a, ax in zip(args, in_axes)))

    return jax.lax.map(one, stacked, batch_size=None if ticket_batch == 1 else ticket_batch)

  return mapped
