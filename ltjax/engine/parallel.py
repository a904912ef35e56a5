"""The ticket axis: K tickets stacked on a leading axis of every pytree, laid over the devices.

Two levels, each one setting:
  * the mesh (`Layout.mesh`): devices arranged as (tickets, batch). Stacked trees are padded to a
    multiple of the `tickets` axis and sharded along it; the `batch` axis, when larger than 1,
    splits each ticket's training batch (and evaluation batches) and averages gradients, for
    fewer tickets than devices. No mesh is exactly the single-device program.
  * on each device, `ticket_batch`: None -> `vmap` over the device's tickets; 1 -> sequential
    `lax.map`; b > 1 -> `lax.map` over chunks of b vmapped tickets.
Padding tickets are copies of the last real one; `unpad` drops them, so they never reach
results, curves, masks or checkpoints. Where a device runs its tickets one at a time, a program
told how many tickets are live skips the padding ones: their outputs are zeros and their core
is free for the other devices' matmuls (XLA:CPU's intra-op pool is shared), so 15 tickets on 2
cores cost 15 tickets' work, not 16 (BUILD_NOTES.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.extend import core as jax_core
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ltjax.engine import oneoff

PyTree = Any
TICKETS, BATCH = "tickets", "batch"


class LayoutError(ValueError):
  """A layout that cannot run on the devices at hand."""


# ---------------------------------------------------------------- stacking
def stack(trees: Sequence[PyTree]) -> PyTree:
  """[tree_0, ..., tree_{K-1}] -> one tree with a leading ticket axis of size K."""
  return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *trees)


def take(tree: PyTree, index) -> PyTree:
  """Select tickets (an int, a slice or an index array) from a stacked tree."""
  if isinstance(index, (int, slice)):
    return jax.tree.map(lambda x: x[index], tree)
  if not jax.tree.leaves(tree):
    return tree  # e.g. the model state of a net without batch norm: no program to compile
  return _take_rows(tree, jax.numpy.asarray(index))


@oneoff.jit
def _take_rows(tree: PyTree, rows: jax.Array) -> PyTree:
  # One program per tree: eagerly, every leaf shape compiled a gather of its own.
  return jax.tree.map(lambda x: x[rows], tree)


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


# ---------------------------------------------------------------- the mesh
@dataclasses.dataclass(frozen=True)
class Layout:
  """Where the stacked tickets run: a (tickets, batch) mesh, or None for one device."""
  mesh: Mesh | None = None

  @property
  def ticket_shards(self) -> int:
    return 1 if self.mesh is None else self.mesh.shape[TICKETS]

  @property
  def batch_shards(self) -> int:
    return 1 if self.mesh is None else self.mesh.shape[BATCH]

  def padded(self, k: int) -> int:
    return -(-k // self.ticket_shards) * self.ticket_shards

  def balanced_order(self, work: np.ndarray) -> np.ndarray | None:
    """An order of the tickets that evens out their work over the ticket shards, or None where
    the stacked order is as fast. `work[i, c]` is ticket i's share of compiled call c: devices
    wait for each other at the end of each call, so an order costs the sum over calls of its
    busiest shard. Shards take contiguous blocks, the padding at the end (and is skipped), so
    Scratch-B's long-budget controls, listed after the tickets, would otherwise keep one device
    busy while the other's tickets stand idle. Greedy: the most work first, onto the shard with
    room that has the least so far."""
    work = np.asarray(work, np.float64).reshape(len(work), -1)
    k, shards = len(work), self.ticket_shards
    if shards == 1 or k < 2:
      return None
    size = self.padded(k) // shards
    room = [max(0, min(size, k - s * size)) for s in range(shards)]  # live tickets per shard
    load, owner = np.zeros(shards), np.zeros(k, np.int64)
    for i in sorted(range(k), key=lambda i: -work[i].sum()):  # ties in list order
      s = min((s for s in range(shards) if room[s]), key=lambda s: load[s])
      owner[i], room[s], load[s] = s, room[s] - 1, load[s] + work[i].sum()
    order = np.array(sorted(range(k), key=lambda i: (owner[i], i)))

    def cost(order):  # the sum over calls of the busiest shard's work
      padded = np.concatenate([work[order], np.zeros((self.padded(k) - k, work.shape[1]))])
      return padded.reshape(shards, size, -1).sum(1).max(0).sum()
    return order if cost(order) < cost(np.arange(k)) else None

  def describe(self) -> str:
    if self.mesh is None:
      return f"one device ({jax.devices()[0].platform})"
    return (f"{self.ticket_shards}x{self.batch_shards} mesh (tickets x batch) over "
            f"{self.mesh.devices.size} {self.mesh.devices.flat[0].platform} devices")

  def map(self, fn: Callable, in_axes: Sequence[int | None], ticket_batch: int | None,
          live: int | None = None) -> Callable:
    """A single-ticket `fn` over stacked inputs: `ticket_map` on each device's share.

    `live`: how many of the (padded) stacked tickets are real; tickets from there on are padding
    and, where each device runs its tickets one at a time, are skipped (see module doc)."""
    if live is None or ticket_batch != 1 or self.mesh is None:
      return self.shard(ticket_map(fn, in_axes, ticket_batch), in_axes)

    def per_device(*args):
      n = num_tickets([a for a, ax in zip(args, in_axes) if ax == 0])
      first = jax.lax.axis_index(TICKETS) * n

      def one(i, *xs):
        # Traced once (the skipping branch needs only its output shapes), not once per branch.
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*xs)
        tree = jax.tree.structure(shapes)
        run = lambda *a: jax.tree.unflatten(tree, jax_core.jaxpr_as_fun(closed)(*jax.tree.leaves(a)))  # noqa: E731
        zeros = lambda *a: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)  # noqa: E731
        return jax.lax.cond(first + i < live, run, zeros, *xs)
      return ticket_map(one, (0, *in_axes), 1)(jnp.arange(n), *args)
    return self.shard(per_device, in_axes)

  def shard(self, fn: Callable, in_axes: Sequence[int | None]) -> Callable:
    """Run `fn` on each device's block of the tickets; shared inputs (axis None) are replicated."""
    if self.mesh is None:
      return fn
    in_specs = tuple(P(TICKETS) if ax == 0 else P() for ax in in_axes)
    # check_vma off: the step counter and the data are replicated values used in per-ticket code.
    return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=P(TICKETS),
                         check_vma=False)

  def pad(self, tree: PyTree) -> PyTree:
    """Repeat the last ticket up to a multiple of the ticket shards (the caller drops them)."""
    k = num_tickets(tree)
    extra = self.padded(k) - k
    if not extra:
      return tree
    if self.mesh is not None and self.mesh.devices.flat[0].platform == "cpu":
      # Host memory is device memory and `place` starts from host values: no program to compile.
      return jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], extra, 0)]), host(tree))
    return _pad(tree, extra)

  def sharding(self, spec: P) -> NamedSharding | None:
    """Where `place` puts a tree with `spec` (None: one device, uncommitted)."""
    return None if self.mesh is None else NamedSharding(self.mesh, spec)

  def place(self, tree: PyTree, spec: P = P(TICKETS)) -> PyTree:
    """Shard a stacked tree over the ticket axis (or, with spec P(), replicate it)."""
    if self.mesh is None:
      return tree
    sharding = NamedSharding(self.mesh, spec)
    placed = lambda x: isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim)  # noqa: E731
    if all(placed(x) for x in jax.tree.leaves(tree)):
      return tree
    # From host values: with several processes each holds the same full value and keeps its
    # shards; on CPU host memory is device memory, and resharding a device array instead compiles
    # a slicing program per leaf shape.
    if jax.process_count() > 1 or self.mesh.devices.flat[0].platform == "cpu":
      return jax.tree.map(lambda x: x if placed(x) else jax.device_put(np.asarray(host(x)), sharding),
                          tree)
    return _resharder(sharding)(tree)  # one program for the tree, not one per leaf

  def replicate(self, tree: PyTree) -> PyTree:
    return self.place(tree, P())


@functools.partial(oneoff.jit, static_argnums=1)
def _pad(tree: PyTree, extra: int) -> PyTree:
  return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, 0)]), tree)


@functools.lru_cache(maxsize=None)
def _resharder(sharding: NamedSharding) -> Callable[[PyTree], PyTree]:
  return jax.jit(lambda tree: tree, out_shardings=sharding)


def host(tree: PyTree) -> PyTree:
  """Every leaf as one complete numpy array, gathered from all devices and processes.

  Results leave the mesh this way so that no later eager op on them needs a collective (on CPU
  an eager all-gather over more devices than cores can deadlock)."""
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(x)
  return jax.tree.map(one, tree)


def batch_index() -> jax.Array:
  """This device's position on the batch axis (inside a mapped function; 0 without a mesh)."""
  return jax.lax.axis_index(BATCH)


# ---------------------------------------------------------------- choosing a layout
def parse_mesh(setting: str) -> tuple[int, int] | None:
  """'auto' -> None; 'single' -> (1, 1); 'T' -> (T, 1); 'TxB' -> (T, B)."""
  s = setting.strip().lower()
  if s == "auto":
    return None
  if s == "single":
    return (1, 1)
  m = re.fullmatch(r"(\d+)(?:x(\d+))?", s)
  if not m or int(m.group(1)) < 1 or int(m.group(2) or 1) < 1:
    raise LayoutError(f"unknown layout {setting!r}: use 'auto', 'single', 'T' or 'TxB' (tickets x "
                      "batch devices, e.g. '8' or '4x2')")
  return int(m.group(1)), int(m.group(2) or 1)


def make_layout(setting: str, num_tickets: int, batch_size: int, splittable: bool,
                devices: Sequence[jax.Device] | None = None) -> Layout:
  """The mesh for `setting` ('auto', 'single', 'T' or 'TxB') over `devices` (default: all).

  `splittable` says whether a ticket's batch may be split over devices (not with BatchNorm,
  whose statistics would become per-device). An explicit T x B must use every device.
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = parse_mesh(setting)
  auto = shape is None
  if auto:
    shape = _auto_shape(len(devices), num_tickets, batch_size, splittable,
                        split_batches=devices[0].platform != "cpu")
  t, b = shape
  if t * b == 1:
    return Layout()
  if t * b != len(devices) and not (auto and t * b < len(devices)):
    raise LayoutError(f"mesh {t}x{b} needs {t * b} devices; {len(devices)} available "
                      f"({devices[0].platform})")
  if b > 1 and batch_size % b:
    raise LayoutError(f"mesh {t}x{b}: train.batch_size ({batch_size}) must be divisible by the "
                      f"batch axis ({b})")
  if b > 1 and not splittable:
    raise LayoutError(f"mesh {t}x{b}: this model keeps batch statistics (BatchNorm), so its batch "
                      "cannot be split over devices; use a tickets-only mesh")
  return Layout(Mesh(np.asarray(devices[:t * b]).reshape(t, b), (TICKETS, BATCH)))


def _auto_shape(d: int, k: int, batch_size: int, splittable: bool,
                split_batches: bool) -> tuple[int, int]:
  """Tickets over devices first (no communication). With fewer tickets than devices, an
  accelerator also splits batches (the t x b <= d that leaves the least work per device);
  CPU devices do not (measured slower than one ticket per core, BUILD_NOTES.md), so only K of
  them are used and one ticket on CPU stays the one-device program, with every core on it."""
  if k >= d:
    return d, 1
  if split_batches and splittable:
    options = [(math.ceil(k / t) / b, -t, t * b, (t, b)) for t in range(1, k + 1)
               for b in range(1, d // t + 1) if batch_size % b == 0]
    return min(options)[-1]
  return k, 1
