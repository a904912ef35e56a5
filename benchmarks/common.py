"""Shared measurement helpers: the device's matmul ceiling, peak memory, medians (FLOPs: `benchmarks.flops`)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import data, wiring
from ltjax.core import masks, pruning
from ltjax.engine import parallel, programs


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
  """Median wall time of `fn()` (blocked until ready) over `repeats` runs after one warm-up."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


class MatmulCeiling:
  """A large float32 square matmul: the device's practical FLOP/s ceiling, timed on demand so it
  can be interleaved with the measurement it normalizes (shared machines drift by +-30%)."""

  def __init__(self, n: int | None = None):
    self.n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    self._a = jax.random.normal(jax.random.key(0), (self.n, self.n), jnp.float32)
    self._b = jax.random.normal(jax.random.key(1), (self.n, self.n), jnp.float32)
    self._f = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(self._f(self._a, self._b))

  def flops_per_s(self, repeats: int = 3) -> float:
    return 2 * self.n**3 / median_seconds(lambda: self._f(self._a, self._b), repeats)


def interleaved(fn: Callable[[], Any], ceiling: MatmulCeiling, repeats: int) -> tuple[float, float, float]:
  """(median seconds of fn, median ceiling FLOP/s, median of per-pair ceiling FLOP/s) with each
  timing of fn next to a timing of the ceiling."""
  jax.block_until_ready(fn())
  secs, ceils = [], []
  for _ in range(repeats):
    ceils.append(ceiling.flops_per_s(1))
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    secs.append(time.perf_counter() - t0)
  return statistics.median(secs), statistics.median(ceils), ceils


def peak_memory_mb() -> dict[str, float]:
  """Peak device memory where the backend reports it, and the process's peak RSS."""
  out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["peak_device_mb"] = stats["peak_bytes_in_use"] / 2**20
  return out


def device_info() -> dict[str, Any]:
  d = jax.devices()[0]
  return {"backend": jax.default_backend(), "device": d.device_kind, "devices": len(jax.devices()),
          "cores": len(os.sched_getaffinity(0)), "jax": jax.__version__}


def emit(record: dict[str, Any]) -> None:
  """One machine-readable JSON line per measurement, on stdout."""
  print(json.dumps(record, sort_keys=True), flush=True)
  sys.stdout.flush()


INPUT_SHAPES = {"lenet_300_100": (28, 28, 1)}  # everything else is a CIFAR-10 net


def layout_ok(value: str) -> bool:
  """A MESH:TICKET_BATCH flag value (`execution.mesh`, then the strategy on each device)."""
  mesh, _, tb = value.partition(":")
  parallel.parse_mesh(mesh)
  return int(tb or 0) >= 0


def parse_layouts(values):
  """MESH:TICKET_BATCH strings (checked when flags are parsed) -> (mesh, ticket_batch or None)."""
  return [(v.partition(":")[0], int(v.partition(":")[2] or 0) or None) for v in values]


def fake_dataset(shape, n=2_000) -> data.Dataset:
  """Random uint8 images of the right shape: throughput does not depend on pixel values."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(n + 500, *shape), dtype=np.uint8)
  labels = rng.integers(0, 10, size=n + 500).astype(np.int32)
  return data.from_arrays("bench", (images, labels), (images[:500], labels[:500]), 10, 500)


def stacked_states(trainer, spec, module, ds, k: int, density: float):
  """K tickets of `spec` with random masks at `density`, as stacked TrainStates (and the roles)."""
  init = wiring.make_init(module, ds.input_shape)
  keys = jax.random.split(jax.random.key(0), k)
  params, model_state = jax.vmap(init)(keys)
  roles = spec.layer_roles(jax.tree.map(lambda x: x[0], params))
  rate = 1 - density
  mask = pruning.prune_round(params, params, jax.vmap(masks.ones)(params), roles,
                             pruning.rates_tree(roles, {"conv": rate, "fc": rate, "output": rate}),
                             score="random", key=jax.random.key(1), ticket_axes=1)
  return trainer.init_states(params, mask, model_state, keys), roles


def training_call(trainer, states, dataset, steps: int) -> Callable[[], Any]:
  """A zero-argument call that trains `states` `steps` more steps (no evaluation), keeping them
  placed on the trainer's layout between calls as a round does; returns the losses."""
  holder = {"groups": trainer.place_groups(states)}
  dataset = trainer.layout.replicate(dataset)
  live = trainer.live(parallel.num_tickets(states.params))

  def call():
    outs = [programs.train_steps(trainer, g, dataset, jnp.int32(0), steps, live) for g in holder["groups"]]
    holder["groups"] = [o[0] for o in outs]
    return [o[1] for o in outs]
  return call


def rotated(names: list, rep: int) -> list:
  """`names` starting at rep mod len: alternated variants take turns at going first."""
  k = rep % len(names)
  return names[k:] + names[:k]
