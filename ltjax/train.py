"""Masked training of K stacked tickets as one compiled program.

A round is a sequence of compiled calls; each call maps over the K tickets a `lax.scan` over eval
intervals of a `lax.scan` over steps: `eval_every` masked train steps (batches gathered by index
from the device-resident data with a per-ticket, per-epoch permutation), then a validation pass
and the early-stop bookkeeping. No Python runs inside a call. The step counter comes from the
scan, not from the tickets, so under vmap it stays unbatched and the epoch's permutation is
recomputed (under a real `cond`) only at epoch boundaries.

The mask is applied to the gradients and to the weights after every optimizer update, so pruned
weights are exactly 0.0 after every step whatever the optimizer does (Adam moments, momentum,
weight decay) and the forward pass, which reads the stored weights, always sees the masked
network. (Masking the weights again inside the forward pass would cost a copy of every kernel per
step and change nothing.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax import masks as masks_lib
from ltjax import parallel
from ltjax.data import Dataset, Split

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """One ticket's training state (stacked on a leading axis for K tickets)."""
  params: PyTree
  mask: PyTree
  opt_state: PyTree
  model_state: PyTree  # non-trained collections, e.g. {'batch_stats': ...}; {} for none
  rng: jax.Array       # the ticket's raw key data (uint32): data order and dropout derive from it


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


@dataclasses.dataclass(frozen=True)
class Trainer:
  """What is fixed for a run: the network, the optimizer, and the batching/execution settings.

  `ticket_batch` picks the ticket-axis execution (see `ltjax.parallel`); `eval_batch_size` bounds
  evaluation memory.
  """
  module: nn.Module
  tx: optax.GradientTransformation
  batch_size: int
  eval_batch_size: int = 1000
  ticket_batch: int | None = None
  # No device loops: unroll the step/interval/eval scans and loop over tickets on the host.
  # XLA:CPU runs convolutions inside while loops ~70x slower than outside (jax issue #12868);
  # unrolling trades ~0.4 s of compile per step of an eval interval for the fast path.
  unroll: bool = False

  # ------------------------------------------------------------ single-ticket pieces
  def init_state(self, params: PyTree, mask: PyTree, model_state: PyTree, rng: jax.Array) -> TrainState:
    params = masks_lib.apply(params, mask)
    return TrainState(params=params, mask=mask, opt_state=self.tx.init(params),
                      model_state=model_state, rng=raw_key(rng))

  def init_states(self, params, mask, model_state, rngs) -> TrainState:
    """Stacked TrainStates for stacked params/masks/keys."""
    return jax.jit(jax.vmap(self.init_state))(params, mask, model_state, rngs)

  def _logits(self, params, model_state, images, train: bool, dropout_key=None):
    variables = {"params": params, **model_state}
    rngs = {"dropout": dropout_key} if dropout_key is not None else None
    if train and model_state:
      logits, updates = self.module.apply(variables, images, train=True, rngs=rngs,
                                          mutable=list(model_state))
      return logits, {**model_state, **updates}
    return self.module.apply(variables, images, train=train, rngs=rngs), model_state

  def train_step(self, state: TrainState, images, labels, step) -> tuple[TrainState, jax.Array]:
    dropout_key = jax.random.fold_in(jax.random.fold_in(typed_key(state.rng), 1), step)

    def loss_fn(params):
      # The forward pass sees masked weights without a copy: stored weights are exactly 0.0 at
      # pruned positions (init_state masks them; every step re-masks after the update).
      logits, model_state = self._logits(params, state.model_state, images, True, dropout_key)
      return cross_entropy(logits, labels), model_state

    (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = masks_lib.apply(grads, state.mask)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = masks_lib.apply(optax.apply_updates(state.params, updates), state.mask)
    return state.replace(params=params, opt_state=opt_state, model_state=model_state), loss

  def evaluate(self, params, mask, model_state, dataset: Dataset, split: Split):
    """(mean loss, accuracy) of one ticket over a whole split, in fixed-size padded batches."""
    n, b = len(split), min(self.eval_batch_size, len(split))
    num_batches = math.ceil(n / b)
    params = masks_lib.apply(params, mask)

    def batch(carry, i):
      idx = i * b + jnp.arange(b)
      valid = idx < n
      idx = jnp.minimum(idx, n - 1)
      logits, _ = self._logits(params, model_state, dataset.normalize(split.images[idx]), False)
      labels = split.labels[idx]
      losses = cross_entropy(logits, labels, reduce=False)
      correct = correct_predictions(logits, labels)
      loss_sum, correct_sum = carry
      return (loss_sum + jnp.sum(jnp.where(valid, losses, 0.0)),
              correct_sum + jnp.sum(jnp.where(valid, correct, 0))), None

    (loss_sum, correct_sum), _ = self._scan(batch, (jnp.float32(0), jnp.int32(0)),
                                            jnp.arange(num_batches))
    return loss_sum / n, correct_sum / n

  # ------------------------------------------------------------ the compiled chunk
  def steps_per_epoch(self, dataset: Dataset) -> int:
    return len(dataset.train) // self.batch_size

  def _epoch_perm(self, rng, epoch, n):
    return jax.random.permutation(jax.random.fold_in(jax.random.fold_in(typed_key(rng), 0), epoch), n)

  def _scan(self, body, carry, xs):
    """`lax.scan`, or with `unroll` a Python loop: no device loop at all, whatever the length
    (`lax.scan(unroll=True)` of length 1 is still a while loop)."""
    if not self.unroll:
      return jax.lax.scan(body, carry, xs)
    outs = []
    for i in range(xs.shape[0]):
      carry, out = body(carry, xs[i])
      outs.append(out)
    return carry, jax.tree.map(lambda *ys: jnp.stack(ys), *outs)

  def _tmap(self, fn, in_axes):
    if not self.unroll:
      return parallel.ticket_map(fn, in_axes, self.ticket_batch)

    # Unrolled programs get one ticket (the host loops over tickets). No vmap: a vmapped conv has
    # batched kernels, which XLA:CPU also runs on its slow path.
    def single(*args):
      args = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a for a, ax in zip(args, in_axes)]
      return jax.tree.map(lambda x: x[None], fn(*args))
    return single

  def _scan_steps(self, state: TrainState, perm, dataset: Dataset, start, num_steps: int):
    """One ticket, `num_steps` masked steps from `start`; its permutation refreshes per epoch."""
    n, bsz = len(dataset.train), self.batch_size
    spe = n // bsz

    def body(carry, s):
      state, perm = carry
      # `s` is not per-ticket (it comes from the scan, not from the mapped state), so under vmap
      # this stays a real branch: the permutation is computed once per epoch, not every step.
      perm = jax.lax.cond(s % spe == 0, lambda: self._epoch_perm(state.rng, s // spe, n),
                          lambda: perm)
      idx = jax.lax.dynamic_slice_in_dim(perm, (s % spe) * bsz, bsz)
      images = dataset.normalize(dataset.train.images[idx])
      state, loss = self.train_step(state, images, dataset.train.labels[idx], s)
      return (state, perm), loss

    return self._scan(body, (state, perm), start + jnp.arange(num_steps))

  def _start_perm(self, state: TrainState, dataset: Dataset, step0):
    n = len(dataset.train)
    return self._epoch_perm(state.rng, step0 // (n // self.batch_size), n)

  def train_steps(self, states: TrainState, dataset: Dataset, step0, num_steps: int):
    """Training only (no evaluation): `num_steps` steps from `step0`; returns (states, losses[K, steps])."""
    if not self.unroll:
      return self._train_steps(states, dataset, step0, num_steps)
    outs = [self._train_steps(parallel.take(states, slice(i, i + 1)), dataset, step0, num_steps)
            for i in range(parallel.num_tickets(states.params))]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)

  @functools.partial(jax.jit, static_argnums=(0, 4), donate_argnums=1)
  def _train_steps(self, states: TrainState, dataset: Dataset, step0, num_steps: int):

    def one(state):
      (state, _), losses = self._scan_steps(state, self._start_perm(state, dataset, step0), dataset,
                                            step0, num_steps)
      return state, losses

    return self._tmap(one, (0,))(states)

  def _track(self, state: TrainState, best: EarlyStop, dataset: Dataset, train_loss, s):
    """Validate one ticket at step `s` and keep the best-validation-loss point (and its weights)."""
    val_loss, val_acc = self.evaluate(state.params, state.mask, state.model_state, dataset,
                                      dataset.val)
    finite = jnp.isfinite(val_loss) & jnp.isfinite(train_loss)
    better = finite & (val_loss < best.loss)
    pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)  # noqa: E731
    best = EarlyStop(loss=pick(val_loss, best.loss), step=pick(s, best.step),
                     accuracy=pick(val_acc, best.accuracy), params=pick(state.params, best.params),
                     model_state=pick(state.model_state, best.model_state),
                     diverged=best.diverged | ~finite)
    return best, (val_loss, val_acc)

  @functools.partial(jax.jit, static_argnums=(0, 5, 6), donate_argnums=(1, 2))
  def _run_intervals(self, states: TrainState, tracker: EarlyStop, dataset: Dataset, step0,
                     num_intervals: int, interval: int):
    """K tickets x `num_intervals` x (`interval` steps, then validation) in one program.

    The ticket map is the outermost loop, so with `ticket_batch` = b each chunk of b tickets runs
    all its steps while its weights and optimizer state stay in cache.
    """

    def one_ticket(state, best):
      def interval_body(carry, i):
        state, perm, best = carry
        start = step0 + i * interval
        (state, perm), losses = self._scan_steps(state, perm, dataset, start, interval)
        end = start + interval
        train_loss = jnp.mean(losses)
        best, (val_loss, val_acc) = self._track(state, best, dataset, train_loss, end)
        return (state, perm, best), Curves(step=end, train_loss=train_loss, val_loss=val_loss,
                                           val_accuracy=val_acc)

      carry = (state, self._start_perm(state, dataset, step0), best)
      (state, _, best), curves = self._scan(interval_body, carry, jnp.arange(num_intervals))
      return state, best, curves

    states, tracker, curves = self._tmap(one_ticket, (0, 0))(states, tracker)
    return states, tracker, jax.tree.map(lambda x: x.T, curves)  # -> [num_evals, K]

  def _call_intervals(self, states, tracker, dataset, step, num_intervals, interval):
    """One compiled call for all tickets, or (unrolled) one call per ticket of the same program."""
    if not self.unroll:
      return self._run_intervals(states, tracker, dataset, step, num_intervals, interval)
    outs = [self._run_intervals(parallel.take(states, slice(i, i + 1)),
                                parallel.take(tracker, slice(i, i + 1)), dataset, step,
                                num_intervals, interval)
            for i in range(parallel.num_tickets(states.params))]
    states, tracker = (jax.tree.map(lambda *xs: jnp.concatenate(xs), *(o[j] for o in outs))
                       for j in (0, 1))
    curves = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *(o[2] for o in outs))
    return states, tracker, curves

  @functools.partial(jax.jit, static_argnums=0)
  def evaluate_many(self, params, mask, model_state, dataset: Dataset, split: Split):
    """(loss[K], accuracy[K]) for stacked tickets."""
    fn = lambda p, m, ms: self.evaluate(p, m, ms, dataset, split)  # noqa: E731
    return parallel.ticket_map(fn, (0, 0, 0), self.ticket_batch)(params, mask, model_state)

  # ------------------------------------------------------------ the host loop
  def new_tracker(self, states: TrainState) -> EarlyStop:
    k = parallel.num_tickets(states.params)
    return EarlyStop(loss=jnp.full((k,), jnp.inf, jnp.float32), step=jnp.full((k,), -1, jnp.int32),
                     accuracy=jnp.zeros((k,), jnp.float32),
                     params=jax.tree.map(jnp.copy, states.params),
                     model_state=jax.tree.map(jnp.copy, states.model_state),
                     diverged=jnp.zeros((k,), jnp.bool_))

  def train(self, states: TrainState, dataset: Dataset, steps: int, eval_every: int,
            tracker: EarlyStop | None = None, start_step: int = 0, stop_step: int | None = None,
            intervals_per_call: int = 10,
            callback: Callable[[int, TrainState, EarlyStop, Curves], None] | None = None):
    """Train stacked tickets over [start_step, stop_step) of a `steps`-long run.

    Validation happens at every multiple of `eval_every` and at `steps`; start and stop must be
    such points (or 0). Returns (states, tracker, curves). `callback(step, states, tracker,
    curves_so_far)` runs on the host after each compiled call (progress, mid-round checkpoints).
    Passing the states/tracker of a saved point with its step resumes exactly. The input `states`
    and `tracker` are donated to the computation: use the returned ones.
    """
    validate_schedule(steps, eval_every, self.batch_size, len(dataset.train))
    stop_step = steps if stop_step is None else stop_step
    for name, s in (("start_step", start_step), ("stop_step", stop_step)):
      if not 0 <= s <= steps or (s % eval_every and s != steps):
        raise ValueError(f"{name} {s} must be 0, {steps} or a multiple of eval_every ({eval_every})")
    if start_step > stop_step:
      raise ValueError(f"start_step {start_step} is after stop_step {stop_step}")
    tracker = self.new_tracker(states) if tracker is None else tracker
    curves: list[Curves] = []
    step = start_step
    if self.unroll:
      intervals_per_call = 1  # compile time grows with the unrolled steps
    for num_intervals, interval in call_plan(stop_step - start_step, eval_every, intervals_per_call):
      states, tracker, c = self._call_intervals(states, tracker, dataset, jnp.int32(step),
                                                num_intervals, interval)
      step += num_intervals * interval
      curves.append(c)
      if callback is not None:
        callback(step, states, tracker, concat_curves(curves))
    return states, tracker, concat_curves(curves)


def call_plan(steps: int, eval_every: int, intervals_per_call: int) -> list[tuple[int, int]]:
  """(num_intervals, interval_length) per compiled call, using at most three distinct shapes.

  Full intervals go in equal calls of the largest divisor of their number <= intervals_per_call
  (so one compile serves the whole round); a shorter final interval gets its own call.
  """
  full, rest = divmod(steps, eval_every)
  plan = []
  if full:
    per_call = max(d for d in range(1, max(1, min(intervals_per_call, full)) + 1) if full % d == 0)
    plan += [(per_call, eval_every)] * (full // per_call)
  if rest:
    plan.append((1, rest))
  return plan


def validate_schedule(steps: int, eval_every: int, batch_size: int, num_train: int) -> None:
  if steps < 1:
    raise ValueError(f"training steps must be >= 1, got {steps}")
  if eval_every < 1:
    raise ValueError(f"eval_every must be >= 1, got {eval_every}")
  if eval_every > steps:
    raise ValueError(f"eval_every ({eval_every}) is larger than the run ({steps} steps)")
  if not 1 <= batch_size <= num_train:
    raise ValueError(f"batch size must be in [1, {num_train}] (training examples), got {batch_size}")


def concat_curves(curves: list[Curves]) -> Curves:
  if not curves:
    empty = jnp.zeros((0, 0))
    return Curves(step=empty.astype(jnp.int32), train_loss=empty, val_loss=empty, val_accuracy=empty)
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *curves)


def cross_entropy(logits, labels, reduce: bool = True):
  """Softmax cross-entropy on integer labels; sigmoid cross-entropy for a single logit."""
  if logits.shape[-1] == 1:
    losses = optax.sigmoid_binary_cross_entropy(logits[..., 0], labels.astype(logits.dtype))
  else:
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.mean(losses) if reduce else losses


def correct_predictions(logits, labels):
  if logits.shape[-1] == 1:
    return ((logits[..., 0] > 0).astype(jnp.int32) == labels).astype(jnp.int32)
  return (jnp.argmax(logits, -1) == labels).astype(jnp.int32)


def raw_key(key: jax.Array) -> jax.Array:
  """Keys are stored as raw uint32 data so states convert to numpy and checkpoint plainly."""
  return jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def typed_key(key: jax.Array) -> jax.Array:
  return key if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)


def to_numpy(tree: PyTree) -> PyTree:
  return jax.tree.map(np.asarray, tree)
