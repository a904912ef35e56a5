"""The compiled programs of a round: K tickets x eval intervals x masked steps, and evaluation.

Inside one program the ticket map is the outermost loop (`Layout.map`: over the mesh, then the
per-device `ticket_batch` strategy), then a loop over eval intervals (as many as the call asks:
an argument, so one program serves calls of any length), then a `lax.scan` over steps, so a
device's chunk of tickets keeps its weights and optimizer state in cache across all its steps.
No Python runs inside a call. The step counter comes from the scan, not from the tickets, so
under vmap it stays unbatched and the epoch's permutation is recomputed (under a real `cond`)
only at epoch boundaries.

With `trainer.unroll` there are no device loops at all (XLA:CPU runs convolutions inside while
loops ~70x slower, jax issue #12868): the scans become Python loops at trace time and each
program holds one ticket per device; the host loops over groups of tickets.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from ltjax.core import masks
from ltjax.data import Dataset, Split
from ltjax.engine import early_stop, parallel

PyTree = Any


def scan(trainer, body, carry, xs):
  """`lax.scan`, or with `unroll` a Python loop: no device loop at all, whatever the length
  (`lax.scan(unroll=True)` of length 1 is still a while loop)."""
  if not trainer.unroll:
    return jax.lax.scan(body, carry, xs)
  outs = []
  for i in range(xs.shape[0]):
    carry, out = body(carry, xs[i])
    outs.append(out)
  return carry, jax.tree.map(lambda *ys: jnp.stack(ys), *outs)


def ticket_map(trainer, fn, in_axes, live: int | None = None):
  """Lift a single-ticket fn over the tickets of one program (see module doc); `live` real
  tickets, the rest padding (`Layout.map`)."""
  if not trainer.unroll:
    return trainer.layout.map(fn, in_axes, trainer.ticket_batch, live)

  # One ticket per device. No vmap: a vmapped conv has batched kernels, which XLA:CPU also runs
  # on its slow path.
  def single(*args):
    args = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a for a, ax in zip(args, in_axes)]
    return jax.tree.map(lambda x: x[None], fn(*args))
  return trainer.layout.shard(single, in_axes)


def no_perm(dataset: Dataset):
  """The permutation carry before the first step of a call draws the epoch's (`scan_steps`)."""
  return jnp.zeros(len(dataset.train), jnp.int32)


def scan_steps(trainer, state, perm, dataset: Dataset, start, num_steps: int, draw_at=None):
  """One ticket, `num_steps` masked steps from `start`; its permutation is drawn at each epoch's
  first step and at step `draw_at` (a call's first step, whose epoch is under way).
  With a batch axis, each device gathers its slice of the step's batch."""
  n, bsz = len(dataset.train), trainer.batch_size
  spe = n // bsz
  shards = trainer.layout.batch_shards
  local = bsz // shards

  def body(carry, s):
    state, perm = carry
    # `s` is not per-ticket (it comes from the scan, not from the mapped state), so under vmap
    # this stays a real branch: the permutation is computed once per epoch, not every step. One
    # branch serves the call's start too: each permutation drawn in a program costs ~0.4 s to
    # compile on XLA:CPU.
    draw = s % spe == 0
    if draw_at is not None:
      draw = draw | (s == draw_at)
    perm = jax.lax.cond(draw, lambda: trainer.epoch_perm(state.rng, s // spe, n), lambda: perm)
    offset = (s % spe) * bsz + (parallel.batch_index() * local if shards > 1 else 0)
    idx = jax.lax.dynamic_slice_in_dim(perm, offset, local)
    images = dataset.normalize(dataset.train.images[idx])
    labels = dataset.train.labels[idx]
    state, loss = trainer.train_step(state, images, labels, s)
    if trainer.mask_updates is not None:
      state = trainer.mask_updates(trainer, state, images, labels, s)
    return (state, perm), loss

  return scan(trainer, body, (state, perm), start + jnp.arange(num_steps))


@functools.partial(jax.jit, static_argnums=(0, 4, 5), donate_argnums=1)
def train_steps(trainer, states, dataset: Dataset, step0, num_steps: int, live: int | None = None):
  """Training only: `num_steps` steps from `step0`; (states, losses[K, steps])."""

  def one(state, dataset, step0):
    (state, _), losses = scan_steps(trainer, state, no_perm(dataset), dataset, step0, num_steps,
                                    draw_at=step0)
    return state, losses

  # The data and step go in as (replicated) arguments: a mapped function must not close over
  # arrays placed on the mesh.
  return ticket_map(trainer, one, (0, None, None), live)(states, dataset, step0)


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8), donate_argnums=(1, 2))
def run_intervals(trainer, states, tracker: early_stop.EarlyStop, dataset: Dataset, step0, count,
                  capacity: int, interval: int, live: int | None = None):
  """K tickets x `count` x (`interval` steps, then validation) in one program.

  `count` (at most `capacity`) is an argument, not a shape, so one program serves every call of
  a run at that interval length: a round's last call, a segment that ends at a rewind step, a
  resumed round. The curves have `capacity` rows, the first `count` of them written. Each
  ticket's data order for the epoch of `step0` is drawn at the call's first step (one shuffle
  per call, instead of a program per round that draws it and carries it between calls).
  """

  def one_ticket(state, best, dataset, step0, count):
    perm = no_perm(dataset)

    def interval_body(i, carry):
      start = step0 + i * interval
      schedule = carry[0].schedule
      if not (schedule and trainer.skips_idle):
        return train_interval(carry, start)
      # Outside its own steps (Scratch-B's others after their budget, a later rewind point before
      # its k) a ticket would only repeat a forward pass and a validation of unchanged weights;
      # it skips them (its tracker would not change) and its curves hold NaN there.
      return jax.lax.cond(idle(schedule, start, start + interval),
                          lambda: stand_still(carry, start), lambda: train_interval(carry, start))

    def stand_still(carry, start):
      state, perm, best = carry
      end = start + interval
      spe = len(dataset.train) // trainer.batch_size
      # The permutation the interval's steps would have left behind: their last draw's.
      drew = (start == step0) | (start % spe == 0) | (start // spe != (end - 1) // spe)
      perm = jax.lax.cond(drew, lambda: trainer.epoch_perm(state.rng, (end - 1) // spe,
                                                           len(dataset.train)), lambda: perm)
      nan = jnp.full((), jnp.nan, jnp.float32)
      return (state, perm, best), early_stop.Curves(step=end.astype(jnp.int32), train_loss=nan,
                                                    val_loss=nan, val_accuracy=nan)

    def train_interval(carry, start):
      state, perm, best = carry
      (state, perm), losses = scan_steps(trainer, state, perm, dataset, start, interval,
                                         draw_at=step0)
      end = start + interval
      train_loss = jnp.mean(losses)
      network = trainer.network(state)
      val_loss, val_acc = evaluate(trainer, network, state.model_state, dataset, dataset.val)
      new_best = early_stop.update(best, network, state.model_state, train_loss, val_loss,
                                   val_acc, end)
      # Until a gradual schedule reaches its density, the network is not the one being studied;
      # before a ticket's own first step (a later rewind point beside an earlier one) it has
      # not started.
      settled = getattr(trainer.mask_updates, "settled_at", 0)
      counts = end >= settled if settled else None
      if len(state.schedule) > 2:
        started = end > state.schedule[2]
        counts = started if counts is None else counts & started
      best = new_best if counts is None else jax.tree.map(
          lambda n, o: jnp.where(counts, n, o), new_best, best)
      curve = early_stop.Curves(step=end.astype(jnp.int32), train_loss=train_loss.astype(jnp.float32),
                                val_loss=val_loss.astype(jnp.float32),
                                val_accuracy=val_acc.astype(jnp.float32))
      return (state, perm, best), curve

    if trainer.unroll:  # no device loop: every interval of the call runs (count == capacity)
      (state, _, best), curves = scan(trainer, lambda c, i: interval_body(i, c), (state, perm, best),
                                      jnp.arange(capacity))
      return state, best, curves

    def write(i, carry):
      *carry, rows = carry
      carry, curve = interval_body(i, carry)
      return (*carry, jax.tree.map(lambda r, c: r.at[i].set(c), rows, curve))

    rows = early_stop.Curves(step=jnp.zeros(capacity, jnp.int32),
                             train_loss=jnp.zeros(capacity, jnp.float32),
                             val_loss=jnp.zeros(capacity, jnp.float32),
                             val_accuracy=jnp.zeros(capacity, jnp.float32))
    state, _, best, curves = jax.lax.fori_loop(0, count, write, (state, perm, best, rows))
    return state, best, curves

  states, tracker, curves = ticket_map(trainer, one_ticket, (0, 0, None, None, None), live)(
      states, tracker, dataset, step0, count)
  return states, tracker, jax.tree.map(lambda x: x.T, curves)  # -> [capacity, K]


def idle(schedule: tuple, start, end) -> jax.Array:
  """Whether a ticket with per-ticket `schedule` (a TrainState's, see `train.training`) trains at
  no step of [start, end)."""
  out = start >= schedule[1]
  return out | (end <= schedule[2]) if len(schedule) > 2 else out


def evaluate(trainer, params, model_state, dataset: Dataset, split: Split):
  """(mean loss, accuracy) of one ticket over a whole split, in fixed-size padded batches.

  The stored weights are already masked (training re-masks after every step). With a batch
  axis, each device takes a slice of every eval batch and the sums are added across devices.
  """
  n, b = len(split), min(trainer.eval_batch_size, len(split))
  shards = trainer.layout.batch_shards
  local = -(-b // shards)
  first = parallel.batch_index() * local if shards > 1 else 0

  def batch(carry, i):
    pos = first + jnp.arange(local)
    idx = i * b + pos
    valid = (idx < n) & (pos < b)
    idx = jnp.minimum(idx, n - 1)
    losses, correct = trainer.eval_batch(params, model_state, dataset.normalize(split.images[idx]),
                                         split.labels[idx])
    loss_sum, correct_sum = carry
    return (loss_sum + jnp.sum(jnp.where(valid, losses, 0.0)),
            correct_sum + jnp.sum(jnp.where(valid, correct, 0))), None

  (loss_sum, correct_sum), _ = scan(trainer, batch, (jnp.float32(0), jnp.int32(0)),
                                    jnp.arange(math.ceil(n / b)))
  if shards > 1:
    loss_sum, correct_sum = jax.lax.psum((loss_sum, correct_sum), parallel.BATCH)
  return loss_sum / n, correct_sum / n


@functools.partial(jax.jit, static_argnums=(0, 6))
def evaluate_many(trainer, params, mask, model_state, dataset: Dataset, split: Split,
                  live: int | None = None):
  """(loss[K], accuracy[K]) for stacked tickets under their masks."""
  fn = lambda p, m, ms, data, split: evaluate(trainer, masks.apply(p, m), ms, data, split)  # noqa: E731
  return ticket_map(trainer, fn, (0, 0, 0, None, None), live)(params, mask, model_state, dataset, split)
