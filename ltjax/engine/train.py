"""Masked training of K stacked tickets: the single-ticket step and the host loop of a round.

The mask is applied to the gradients and to the weights after every optimizer update, so pruned
weights are exactly 0.0 after every step whatever the optimizer does (Adam moments, momentum,
weight decay) and the forward pass, which reads the stored weights, always sees the masked
network. (Masking the weights again inside the forward pass would cost a copy of every kernel per
step and change nothing.)

A round is a sequence of compiled calls (`ltjax.engine.programs`), each running every ticket through
several eval intervals; `Trainer.train` is the host loop around them. Where the tickets run is
`Trainer.layout` (`ltjax.engine.parallel`): stacked trees are padded to the mesh, placed on it, and come
back unpadded and complete.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax.core import masks as masks_lib
from ltjax.data import Dataset, Split
from ltjax.engine import ahead, early_stop, oneoff, optimizers, parallel, programs, timing
from ltjax.engine.early_stop import Curves, EarlyStop, concat_curves  # noqa: F401 -- the round's types

PyTree = Any

# A model_state entry {'mean': [C], 'std': [C]} that `Trainer.logits` applies to the inputs before
# the network: tickets of one program that normalize their inputs differently (sweep points side
# by side, `ltjax.runs.together`) read raw-scaled batches and carry their own statistics here.
INPUT_STATS = "input_stats"


@flax.struct.dataclass
class TrainState:
  """One ticket's training state (stacked on a leading axis for K tickets)."""
  params: PyTree
  mask: PyTree
  opt_state: PyTree
  model_state: PyTree  # non-trained collections, e.g. {'batch_stats': ...}; {} for none
  rng: jax.Array       # the ticket's raw key data (uint32): data order and dropout derive from it
  # () for the run's schedule; (lr_scale, last_step) where tickets of one program train on
  # schedules of their own (Liu et al.'s Scratch-B control: a larger rate, a longer budget), and
  # (lr_scale, last_step, first_step) where they also start at steps of their own (points side
  # by side that rewind to different steps): a ticket trains and validates in [first, last).
  schedule: tuple = ()


@dataclasses.dataclass(frozen=True)
class Trainer:
  """What is fixed for a run: the network, the optimizer, batching, and where the tickets run.

  `layout` lays the ticket axis over devices and `ticket_batch` picks the strategy on each device
  (see `ltjax.engine.parallel`); `unroll` removes every device loop (see `ltjax.engine.programs`);
  `eval_batch_size` bounds evaluation memory. `mask_updates`, where a method changes masks while
  it trains (gradual pruning, dynamic sparse training), is called after every step with
  (trainer, state, images, labels, step) and returns the state; it must be hashable (a frozen
  dataclass of tuples) and branch on the step itself, so steps without an update stay cheap.
  A `mask_updates` whose `straight_through` is True keeps every weight dense and trains it
  through the mask: the forward pass sees the masked weights, the gradient reaches all of them
  (straight-through pruning); `network(state)` is then the masked view. `stretch`, where the run's
  rate warms up or decays, moves those steps for a ticket whose budget is not the run's (Scratch-B).
  """
  module: nn.Module
  tx: optax.GradientTransformation
  batch_size: int
  eval_batch_size: int = 1000
  ticket_batch: int | None = None
  unroll: bool = False
  layout: parallel.Layout = parallel.Layout()
  mask_updates: Callable | None = None
  stretch: optimizers.Stretch | None = None  # the run's warmup and decay, for tickets of longer budgets
  balance_shards: bool = True  # False: shards take the tickets in stacked order (benchmarks.own_schedules)

  @property
  def branches_per_ticket(self) -> bool:
    """Whether a `cond` on a ticket's own value should branch: each ticket runs on its own (one
    at a time, whole batch; vmapped or batch-split tickets would run both branches), and not
    unrolled, where XLA:CPU runs convolutions inside a conditional ~35x slower (as inside loops,
    see `ltjax.engine.programs`; measured in BUILD_NOTES), so computing and discarding is cheaper."""
    return self.ticket_batch == 1 and self.layout.batch_shards == 1 and not self.unroll

  @property
  def skips_idle(self) -> bool:
    """Whether a ticket on a schedule of its own skips the intervals outside its steps instead of
    running and discarding them (`programs.run_intervals`)."""
    return self.branches_per_ticket and self.mask_updates is None

  @property
  def straight_through(self) -> bool:
    return bool(getattr(self.mask_updates, "straight_through", False))

  def network(self, state: TrainState) -> PyTree:
    """The weights the ticket's network runs with: the stored ones, masked where they are kept dense."""
    return masks_lib.apply(state.params, state.mask) if self.straight_through else state.params

  # ------------------------------------------------------------ one ticket
  def init_state(self, params: PyTree, mask: PyTree, model_state: PyTree, rng: jax.Array,
                 schedule: tuple = ()) -> TrainState:
    params = masks_lib.apply(params, mask)
    return TrainState(params=params, mask=mask, opt_state=self.tx.init(params),
                      model_state=model_state, rng=raw_key(rng), schedule=schedule)

  def init_states(self, params, mask, model_state, rngs, schedule: tuple = ()) -> TrainState:
    """Stacked TrainStates for stacked params/masks/keys (and per-ticket (lr_scale[K],
    last_step[K]) when tickets follow schedules of their own)."""
    return oneoff.jit(jax.vmap(self.init_state))(params, mask, model_state, rngs, schedule)

  def logits(self, params, model_state, images, train: bool, dropout_key=None):
    stats = model_state.get(INPUT_STATS) if model_state else None
    if stats is not None:  # this ticket's own input normalization (see INPUT_STATS)
      images = (images - stats["mean"]) / stats["std"]
      model_state = {k: v for k, v in model_state.items() if k != INPUT_STATS}
    variables = {"params": params, **model_state}
    rngs = {"dropout": dropout_key} if dropout_key is not None else None
    if train and model_state:
      logits, updates = self.module.apply(variables, images, train=True, rngs=rngs,
                                          mutable=list(model_state))
      model_state = {**model_state, **updates}
    else:
      logits = self.module.apply(variables, images, train=train, rngs=rngs)
    return logits, (model_state if stats is None else {**model_state, INPUT_STATS: stats})

  def train_step(self, state: TrainState, images, labels, step) -> tuple[TrainState, jax.Array]:
    if not state.schedule:
      return self._step(state, images, labels, step)
    active = training(state.schedule, step)
    if self.branches_per_ticket:
      # One ticket at a time, so a real branch: outside its steps a ticket (Scratch-B's others, a
      # shorter point beside a longer one, a later rewind point) stands still for the price of
      # a forward pass.
      return jax.lax.cond(active, lambda: self._step(state, images, labels, step),
                          lambda: (state, self._loss_fn(state, images, labels, step)(state.params)[0]))
    # Vmapped tickets would run both branches of a cond, and unrolled ones run its convolutions
    # slowly: keep one step and discard it.
    new, loss = self._step(state, images, labels, step)
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state), loss

  def _loss_fn(self, state: TrainState, images, labels, step):
    """params -> (training loss, model state) of one ticket's step."""
    dropout_key = jax.random.fold_in(jax.random.fold_in(typed_key(state.rng), 1), step)
    if self.layout.batch_shards > 1:  # this device holds a slice of the batch
      dropout_key = jax.random.fold_in(dropout_key, parallel.batch_index())
    dense = self.straight_through

    def loss_fn(params):
      # The forward pass sees masked weights without a copy: stored weights are exactly 0.0 at
      # pruned positions (init_state masks them; every step re-masks after the update).
      if dense:  # straight through: the masked weights forward, the identity backward
        params = jax.tree.map(lambda p, m: p + jax.lax.stop_gradient(jnp.where(m, p, 0) - p),
                              params, state.mask)
      logits, model_state = self.logits(params, state.model_state, images, True, dropout_key)
      return cross_entropy(logits, labels), model_state
    return loss_fn

  def _step(self, state: TrainState, images, labels, step) -> tuple[TrainState, jax.Array]:
    split = self.layout.batch_shards > 1
    dense = self.straight_through
    loss_fn = self._loss_fn(state, images, labels, step)
    (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if split:
      grads, loss = jax.lax.pmean((grads, loss), parallel.BATCH)
    if not dense:
      grads = masks_lib.apply(grads, state.mask)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    if state.schedule:  # optax scales by the rate last, so scaling the update scales the rate
      lr_scale = state.schedule[0]
      if self.stretch is not None:  # a longer budget (Scratch-B) decays at its own fractions
        lr_scale = lr_scale * self.stretch.factor(step, state.schedule[1])
      updates = jax.tree.map(lambda u: u * lr_scale.astype(u.dtype), updates)
    params = optax.apply_updates(state.params, updates)
    if not dense:
      params = masks_lib.apply(params, state.mask)
    return state.replace(params=params, opt_state=opt_state, model_state=model_state), loss

  def eval_batch(self, params, model_state, images, labels):
    """(per-example losses, per-example correct) of one ticket on one batch."""
    logits, _ = self.logits(params, model_state, images, False)
    return cross_entropy(logits, labels, reduce=False), correct_predictions(logits, labels)

  def epoch_perm(self, rng, epoch, n):
    """The ticket's data order for an epoch: a function of its key and the epoch only."""
    return jax.random.permutation(jax.random.fold_in(jax.random.fold_in(typed_key(rng), 0), epoch), n)

  def evaluate(self, params, mask, model_state, dataset: Dataset, split: Split):
    """(mean loss, accuracy) of one ticket over a whole split (one device)."""
    one = dataclasses.replace(self, layout=parallel.Layout())
    return programs.evaluate(one, masks_lib.apply(params, mask), model_state, dataset, split)

  # ------------------------------------------------------------ K tickets, on the layout
  def new_tracker(self, states: TrainState) -> EarlyStop:
    return early_stop.new_tracker(states.params, states.model_state)

  def place_groups(self, tree: PyTree) -> list[PyTree]:
    """Padded, placed ticket groups: one, or (unrolled) one ticket per device per group."""
    tree = self.layout.pad(tree)
    k = parallel.num_tickets(tree)
    size = self.layout.ticket_shards if self.unroll else k
    if size == k:
      return [self.layout.place(tree)]
    return [self.layout.place(parallel.take(tree, slice(i, i + size))) for i in range(0, k, size)]

  def shard_order(self, schedule: tuple, windows: list[tuple[int, int]]) -> np.ndarray | None:
    """Where tickets on schedules of their own skip their idle intervals (one at a time on each
    device), the order that evens out the devices' steps in each compiled call ([start, stop)
    `windows`); None to keep the stacked order."""
    if not (self.balance_shards and schedule and self.skips_idle):
      return None
    last = np.asarray(parallel.host(schedule[1]))[:, None]
    first = np.asarray(parallel.host(schedule[2]))[:, None] if len(schedule) > 2 else 0
    starts, stops = (np.array([w[j] for w in windows])[None, :] for j in (0, 1))
    return self.layout.balanced_order(np.maximum(np.minimum(last, stops) - np.maximum(first, starts), 0))

  def live(self, k: int) -> int | None:
    """What the programs are told of `k` tickets padded to the mesh: k where padding was added
    (the padding is skipped, `parallel.Layout.map`), None where there is none (and unrolled,
    where groups differ in padding and one program serves them all)."""
    return k if self.layout.padded(k) != k and not self.unroll else None

  def gather_groups(self, groups: list[PyTree], k: int, axis: int = 0) -> PyTree:
    """Groups back to one unpadded tree, complete on the host when it came off a mesh."""
    if self.layout.mesh is not None:  # numpy from here: no eager op compiles per leaf shape
      groups = [parallel.host(g) for g in groups]
      tree = jax.tree.map(lambda *xs: np.concatenate(xs, axis=axis), *groups)
      return jax.tree.map(lambda x: x[(slice(None),) * axis + (slice(0, k),)], tree)
    return groups[0] if len(groups) == 1 else _concatenate(groups, axis)

  def evaluate_many(self, params, mask, model_state, dataset: Dataset, split: Split):
    """(loss[K], accuracy[K]) for stacked tickets."""
    with timing.phase("test"):
      k, dataset, split = parallel.num_tickets(params), *self.layout.replicate((dataset, split))
      outs = [programs.evaluate_many(self, *g, dataset, split, self.live(k))
              for g in self.place_groups((params, mask, model_state))]
      return timing.wait(self.gather_groups(outs, k))

  def evaluate_ahead(self, states: TrainState, dataset: Dataset, split: Split) -> ahead.Ahead | None:
    """Start compiling `evaluate_many` for these stacked tickets on `split` on another thread, to
    be waited on before it runs (`ltjax.engine.ahead`); None when unrolled (one program per
    group size)."""
    if self.unroll:
      return None
    k = parallel.num_tickets(states.params)
    padded, tickets = self.layout.padded(k), self.layout.sharding(parallel.P(parallel.TICKETS))
    shared = self.layout.sharding(parallel.P())
    stacked = jax.tree.map(lambda x: jax.ShapeDtypeStruct((padded, *x.shape[1:]), x.dtype, sharding=tickets),
                           (states.params, states.mask, states.model_state))
    data = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=shared), (dataset, split))
    return ahead.Ahead(programs.evaluate_many, self, *stacked, *data, self.live(k))

  def train(self, states: TrainState, dataset: Dataset, steps: int, eval_every: int,
            tracker: EarlyStop | None = None, start_step: int = 0, stop_step: int | None = None,
            intervals_per_call: int = 10,
            callback: Callable[[int, Callable[[], tuple[TrainState, EarlyStop]], Curves], None] | None = None):
    """Train stacked tickets over [start_step, stop_step) of a `steps`-long run.

    Validation happens at every multiple of `eval_every` and at `steps`; start and stop must be
    such points (or 0). Returns (states, tracker, curves), complete and unpadded.
    `callback(step, snapshot, curves_so_far)` runs on the host after each compiled call
    (progress, mid-round checkpoints); `snapshot()` fetches (states, tracker) at that point, so
    only a callback that needs them pays for it. Passing the states/tracker of a saved point with
    its step resumes exactly. The input `states` and `tracker` are donated: use the returned ones.
    """
    with timing.phase("training + validation"):  # (the callback's writes are timed as theirs)
      return self._train(states, dataset, steps, eval_every, tracker, start_step, stop_step,
                         intervals_per_call, callback)

  def _train(self, states, dataset, steps, eval_every, tracker, start_step, stop_step, intervals_per_call,
             callback):
    validate_schedule(steps, eval_every, self.batch_size, len(dataset.train))
    stop_step = steps if stop_step is None else stop_step
    for name, s in (("start_step", start_step), ("stop_step", stop_step)):
      if not 0 <= s <= steps or (s % eval_every and s != steps):
        raise ValueError(f"{name} {s} must be 0, {steps} or a multiple of eval_every ({eval_every})")
    if start_step > stop_step:
      raise ValueError(f"start_step {start_step} is after stop_step {stop_step}")
    k = parallel.num_tickets(states.params)
    tracker = self.new_tracker(states) if tracker is None else tracker
    dataset = self.layout.replicate(dataset)
    if self.unroll:
      intervals_per_call = 1  # compile time grows with the unrolled steps
    plan = call_plan(stop_step - start_step, eval_every, intervals_per_call)
    bounds = start_step + np.cumsum([0] + [count * interval for count, interval in plan])
    order = self.shard_order(states.schedule, list(zip(bounds[:-1].tolist(), bounds[1:].tolist())))
    if order is not None:  # the devices' shares, undone for everything the caller sees
      states, tracker = _reorder((states, tracker), order)
      back = np.argsort(order)
    restore = lambda tree, axis=0: tree if order is None else _reorder(tree, back, axis)  # noqa: E731
    groups = self.place_groups((states, tracker))
    curves: list[Curves] = []
    step = start_step
    snapshot = lambda: restore(self.gather_groups(groups, k))  # noqa: E731
    live = self.live(k)
    for count, interval in plan:
      outs = [programs.run_intervals(self, s, t, dataset, jnp.int32(step), jnp.int32(count),
                                     intervals_per_call, interval, live)
              for s, t in groups]
      groups = [(s, t) for s, t, _ in outs]
      written = timing.wait(restore(self.gather_groups([c for *_, c in outs], k, axis=1), axis=1))
      curves.append(jax.tree.map(lambda x: np.asarray(x)[:count], written))
      step += count * interval
      if callback is not None:
        callback(step, snapshot, concat_curves(curves))
    states, tracker = snapshot()
    return states, tracker, concat_curves(curves)


def _reorder(tree: PyTree, order: np.ndarray, axis: int = 0) -> PyTree:
  """`tree`'s tickets (on `axis`) in `order`, as complete host arrays."""
  return jax.tree.map(lambda x: np.take(x, order, axis=axis), parallel.host(tree))


def training(schedule: tuple, step) -> jax.Array:
  """Whether a ticket with per-ticket `schedule` (a TrainState's) trains at `step`."""
  active = step < schedule[1]
  return active & (step >= schedule[2]) if len(schedule) > 2 else active


@functools.partial(jax.jit, static_argnums=1)
def _concatenate(groups: list[PyTree], axis: int) -> PyTree:
  return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=axis), *groups)


def call_plan(steps: int, eval_every: int, intervals_per_call: int) -> list[tuple[int, int]]:
  """(intervals, interval length) per compiled call: full intervals `intervals_per_call` at a
  time (the last call may hold fewer), then a shorter final interval in a call of its own.

  The number of intervals is an argument of the program, so every call of one interval length
  runs the same compiled program (`programs.run_intervals`).
  """
  full, rest = divmod(steps, eval_every)
  plan = [(min(intervals_per_call, full - i), eval_every) for i in range(0, full, intervals_per_call)]
  return plan + [(1, rest)] if rest else plan


def validate_schedule(steps: int, eval_every: int, batch_size: int, num_train: int) -> None:
  if steps < 1:
    raise ValueError(f"training steps must be >= 1, got {steps}")
  if eval_every < 1:
    raise ValueError(f"eval_every must be >= 1, got {eval_every}")
  if eval_every > steps:
    raise ValueError(f"eval_every ({eval_every}) is larger than the run ({steps} steps)")
  if not 1 <= batch_size <= num_train:
    raise ValueError(f"batch size must be in [1, {num_train}] (training examples), got {batch_size}")


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
