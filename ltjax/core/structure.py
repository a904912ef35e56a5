"""What is pruned together: the sparsity *type* of a kernel, the fourth choice beside the
algorithm, the distribution over layers and the schedule.

- `unstructured`: single weights (the paper's).
- `N:M` (e.g. "2:4"): at most N live weights in every group of M consecutive inputs of an
  output unit (the input axis is the kernel's second to last; for a conv, per spatial tap), the
  pattern sparse tensor cores run (Mishra et al. 2021). Its density is N/M.
- `units`: whole output units (dense columns, conv output channels), scored by their mean score.
  A pruned unit's outgoing weights in the next layer go with it (`couple_chain`, for the networks
  whose layer order `unit_chain` knows).
- `block:HxW`: H x W blocks of the kernel seen as [fan_in, fan_out] (a conv's taps and input
  channels are its fan_in), scored by their mean; edge blocks may be smaller.

Group structures (single weights, units, blocks) rank whole groups with the one exact-count
selection (`pruning.drop_lowest`): a group lives or dies whole, pruned groups stay pruned, ties
go to the lower index. N:M keeps the N best live weights of each group instead. Every check on
shapes is made on the host, before anything is traced, and fails with one line.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.core import masks
from ltjax.core.pruning import PruningError, drop_lowest

SPELLINGS = "'unstructured', 'N:M' (e.g. '2:4'), 'units' or 'block:HxW' (e.g. 'block:4x4')"


@dataclasses.dataclass(frozen=True)
class Structure:
  """A sparsity type. `n`/`m` for N:M; `block` (rows, cols) for blocks."""
  kind: str                                  # 'unstructured', 'n:m', 'units', 'block'
  n: int = 0
  m: int = 0
  block: tuple[int, int] = (1, 1)

  def __str__(self) -> str:
    return {"n:m": f"{self.n}:{self.m}", "block": f"block:{self.block[0]}x{self.block[1]}"}.get(
        self.kind, self.kind)

  # ---------------------------------------------------------------- host: shapes and counts
  def check(self, shape: tuple[int, ...], name: str = "kernel") -> None:
    """Raise PruningError (one line) unless this type can prune a kernel of `shape`."""
    if len(shape) < 2:
      raise PruningError(f"{self} sparsity needs a kernel with input and output axes; {name} has shape {shape}")
    fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
    if self.kind == "block" and (self.block[0] > fan_in or self.block[1] > fan_out):
      raise PruningError(f"{self} blocks do not fit {name}, a [{fan_in}, {fan_out}] kernel "
                         "(fan_in x fan_out)")
    if self.kind == "n:m" and shape[-2] % self.m:
      raise PruningError(f"{self} sparsity groups {self.m} inputs, but {name} has {shape[-2]} inputs "
                         f"(not a multiple of {self.m})")

  def num_groups(self, shape: tuple[int, ...]) -> int:
    """How many units a keep count is counted in: weights, units or blocks (N:M: weights)."""
    ids = self.group_ids(shape)
    return int(np.prod(shape)) if ids is None else int(ids.max()) + 1

  def group_ids(self, shape: tuple[int, ...]) -> np.ndarray | None:
    """int32[shape]: each weight's group (None: every weight is its own, or N:M)."""
    if self.kind in ("unstructured", "n:m"):
      return None
    fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
    rows, cols = np.meshgrid(np.arange(fan_in), np.arange(fan_out), indexing="ij")
    if self.kind == "units":
      ids = cols
    else:
      bh, bw = self.block
      ids = (rows // bh) * (-(-fan_out // bw)) + cols // bw
    return ids.reshape(shape).astype(np.int32)

  def density(self, shape: tuple[int, ...], keep: int) -> float:
    """The fraction of a kernel's weights that `keep` groups (N:M: N per M) leave."""
    if self.kind == "n:m":
      return self.n / self.m
    ids = self.group_ids(shape)
    if ids is None:
      return keep / int(np.prod(shape))
    sizes = np.bincount(ids.ravel())
    return float(np.sort(sizes)[::-1][:keep].sum() / ids.size)  # at most; edge blocks are smaller

  # ---------------------------------------------------------------- traced: the selection
  def select(self, scores: jax.Array, alive: jax.Array, keep) -> jax.Array:
    """The new alive mask of one kernel: its `keep` best groups (N:M: N best per group)."""
    if self.kind == "n:m":
      return _n_of_m(scores, alive, self.n, self.m)
    ids = self.group_ids(scores.shape)
    total = self.num_groups(scores.shape)
    if ids is None:
      return drop_lowest(scores.ravel(), alive.ravel(),
                         jnp.sum(alive, dtype=jnp.int32) - keep).reshape(alive.shape)
    flat_ids = jnp.asarray(ids.ravel())
    # A group's score is its live weights' mean: a dead weight's score (a movement score's
    # |0 - w_init|, say) says nothing about the group.
    live = alive.ravel()
    counts = jax.ops.segment_sum(live.astype(jnp.float32), flat_ids, total)
    group_score = jax.ops.segment_sum(jnp.where(live, scores.ravel().astype(jnp.float32), 0.0),
                                      flat_ids, total) / jnp.maximum(counts, 1.0)
    # A group is alive while any of its weights is: a unit also loses the incoming weights from
    # units the layer before pruned, and stays a unit to rank.
    group_alive = jax.ops.segment_max(alive.ravel().astype(jnp.int32), flat_ids, total) > 0
    kept = drop_lowest(group_score, group_alive, jnp.sum(group_alive, dtype=jnp.int32) - keep)
    return kept[flat_ids].reshape(alive.shape) & alive

  def shuffle(self, alive: jax.Array, key: jax.Array) -> jax.Array:
    """A random mask of this type as large as `alive`: the same live count per kernel (N:M: per
    group of M), at random places; groups (units, blocks) are drawn whole, as many as live."""
    if self.kind == "unstructured":
      return jax.random.permutation(key, alive.ravel()).reshape(alive.shape)
    noise = jax.random.uniform(key, alive.shape)
    if self.kind == "n:m":
      return _n_of_m(noise, jnp.ones_like(alive), _grouped(alive, self.m).sum(-1, keepdims=True), self.m)
    ids = self.group_ids(alive.shape)
    total = self.num_groups(alive.shape)
    flat_ids = jnp.asarray(ids.ravel())
    live = jax.ops.segment_max(alive.ravel().astype(jnp.int32), flat_ids, total) > 0
    drawn = drop_lowest(jax.ops.segment_sum(noise.ravel(), flat_ids, total), jnp.ones(total, bool),
                        total - jnp.sum(live, dtype=jnp.int32))
    return drawn[flat_ids].reshape(alive.shape)


def _n_of_m(scores: jax.Array, alive: jax.Array, n, m: int) -> jax.Array:
  """Keep the n best live weights in each group of m consecutive inputs (ties: lower index);
  `n` may also be an array of per-group counts in the grouped layout ([..., groups, fan_out, 1])."""
  shape = scores.shape
  s, a = _grouped(scores.astype(jnp.float32), m), _grouped(alive, m)
  s = jnp.where(a, s, -jnp.inf)
  # Rank within the group: how many live weights beat this one (higher score, or equal and earlier).
  pos = jnp.arange(m)
  beats = (s[..., None, :] > s[..., :, None]) | ((s[..., None, :] == s[..., :, None]) &
                                                  (pos[None, :] < pos[:, None]))
  rank = jnp.sum(beats & a[..., None, :], axis=-1)
  keep = a & (rank < n)
  return jnp.moveaxis(keep, -1, -2).reshape(shape)


def _grouped(x: jax.Array, m: int) -> jax.Array:
  """[..., fan_in, fan_out] -> [..., fan_in / m, fan_out, m]: each group of m inputs last."""
  shape = x.shape
  return jnp.moveaxis(x.reshape(shape[:-2] + (shape[-2] // m, m, shape[-1])), -2, -1)


# ---------------------------------------------------------------- units that feed each other
def unit_chain(params) -> tuple[int, ...]:
  """The kernel leaves of ltjax's MLPs and conv nets (conv1..convN, fc1..fcN, out) in forward
  order, as leaf indices: unit pruning must know which layer feeds which (PruningError for any
  other network, so far)."""
  def numbered(prefix):
    names = [n for n in params if n.startswith(prefix) and n[len(prefix):].isdigit()]
    return sorted(names, key=lambda n: int(n[len(prefix):]))
  convs, fcs = numbered("conv"), numbered("fc")
  order = convs + fcs + ["out"]
  index = {masks.path_str(path): i for i, (path, _) in enumerate(jax.tree_util.tree_flatten_with_path(params)[0])}
  if (set(params) != set(order) or [f"fc{i + 1}" for i in range(len(fcs))] != fcs
      or [f"conv{i + 1}" for i in range(len(convs))] != convs
      or any(f"{n}/kernel" not in index for n in order)):
    raise PruningError("'units' needs to know which layer feeds which: ltjax's MLPs and conv nets "
                       f"(conv1..convN, fc1..fcN, out) so far, not a network of {', '.join(sorted(params))}")
  kernels = [params[n]["kernel"] for n in order]
  for a, b in zip(kernels, kernels[1:]):
    fan_in = b.shape[-2] if len(b.shape) > 2 else b.shape[0]
    if fan_in % a.shape[-1] or (len(b.shape) > 2 and fan_in != a.shape[-1]):
      raise PruningError("'units': the network's layers do not chain (a layer's outputs are not the "
                         "next's inputs)")
  return tuple(index[f"{n}/kernel"] for n in order)


def couple(feeding: jax.Array, fed: jax.Array) -> jax.Array:
  """`fed`'s mask without the inputs from `feeding`'s dead units (channels), so a pruned unit
  takes its outgoing weights along. A dense layer after a conv sees its channels flattened
  (NHWC: input i is channel i % C)."""
  alive = feeding.any(axis=tuple(range(feeding.ndim - 1)))
  if fed.ndim == 2:
    return fed & jnp.tile(alive, fed.shape[0] // alive.shape[0])[:, None]
  return fed & alive[:, None]


def couple_chain(leaves: list, chain: tuple[int, ...]) -> list:
  """`leaves` (masks, in tree order) with every unit's outgoing weights gone with it, in order."""
  leaves = list(leaves)
  for a, b in zip(chain, chain[1:]):
    leaves[b] = couple(leaves[a], leaves[b])
  return leaves


def parse(spec: str) -> Structure:
  """'unstructured', 'N:M', 'units' or 'block:HxW' -> a Structure (one-line error otherwise)."""
  if not isinstance(spec, str):
    raise PruningError(f"sparsity type must be {SPELLINGS}, got {spec!r}")
  s = spec.strip().lower()
  if s in ("unstructured", "units"):
    return Structure(s)
  nm = re.fullmatch(r"(\d+):(\d+)", s)
  if nm:
    n, m = int(nm[1]), int(nm[2])
    if not 0 < n < m:
      raise PruningError(f"N:M sparsity needs 0 < N < M, got {spec!r}")
    return Structure("n:m", n=n, m=m)
  blk = re.fullmatch(r"block:(\d+)x(\d+)", s)
  if blk:
    bh, bw = int(blk[1]), int(blk[2])
    if bh < 1 or bw < 1 or bh * bw < 2:
      raise PruningError(f"blocks need at least 2 weights, got {spec!r}")
    return Structure("block", block=(bh, bw))
  raise PruningError(f"sparsity type must be {SPELLINGS}, got {spec!r}")
