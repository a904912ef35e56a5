r"""Does a ticket run faster? Inference of LeNet-300-100 tickets four ways, at each density.

  python -m benchmarks.inference                                   # IMP-like masks, the paper's ladder
  python -m benchmarks.inference --workdir=workdirs/lenet_01_20k   # the masks a run found (its trial 0)

For each density and batch size (`--batches`, default 1 and 1,000), one JSON line per way:
- `dense`: the unpruned network (the baseline every ratio is to);
- `masked`: the ticket as ltjax trains it, a dense matmul over weights that are 0 where pruned;
- `exported`: `ltjax.models.export`'s narrower dense network (dead units and unread inputs gone);
- `bcoo`: every kernel as a `jax.experimental.sparse.BCOO` matrix (only live weights stored).
Each line has the median latency of a jitted forward pass over `--repeats` calls (the four ways
alternated within each repeat, their order rotated), throughput in examples/s, `ratio_to_dense`
(same run), and the bytes of the weights the way keeps (BCOO: values and int32 indices; masked: weights and masks).
Without `--workdir`, masks come from magnitude pruning θ0 at the paper's rates (fc 20%, output
10% per round) to the rounds in `--rounds`.
"""

from __future__ import annotations

import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from jax.experimental import sparse

from benchmarks import common
from experiments import cli
from ltjax import models
from ltjax.core import masks, pruning
from ltjax.models import export
from ltjax.runs import results

_WORKDIR = flags.DEFINE_string("workdir", "", "A LeNet-300-100 workdir whose masks/round_*.npz to use.")
_ROUNDS = flags.DEFINE_list("rounds", ["0", "3", "7", "12", "16", "20"], "Rounds (density ladder) to time.")
_BATCHES = flags.DEFINE_list("batches", ["1", "1000"], "Batch sizes.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per way (median reported).")
cli.check_flag("rounds", lambda v: cli.is_int_list(v, lo=0), "rounds must be integers >= 0")
cli.check_flag("batches", cli.is_int_list, "batches must be integers >= 1")
cli.check_flag("repeats", lambda v: v >= 1, "repeats must be >= 1")


def _masks_from_workdir(workdir: pathlib.Path, rounds: list[int], params):
  """Trial 0's ticket mask of each round (the first row of masks/round_XX.npz)."""
  out = {}
  for r in rounds:
    path = workdir / "masks" / f"round_{r:02d}.npz"
    if not path.exists():
      cli.fail(f"workdir: {path} does not exist (no round {r} of a lottery run there)")
    with np.load(path) as blob:
      leaves = results.unpack_masks({k: blob[k] for k in blob.files})
    mask = {}
    for layer, group in params.items():
      mask[layer] = {}
      for leaf, p in group.items():
        m = leaves.get(f"{layer}/{leaf}")
        if m is not None and m.shape[1:] != p.shape:
          cli.fail(f"workdir: {path} holds {layer}/{leaf} of shape {m.shape[1:]}, not LeNet-300-100's {p.shape}")
        mask[layer][leaf] = jnp.ones(p.shape, bool) if m is None else jnp.asarray(m[0])
    out[r] = mask
  return out


def _imp_masks(rounds: list[int], params, roles):
  rates = pruning.rates_tree(roles, {"fc": 0.2, "output": 0.1})
  mask, out = masks.ones(params), {}
  for r in range(max(rounds) + 1):
    if r in rounds:
      out[r] = mask
    mask = pruning.prune_round(params, params, mask, roles, rates)
  return out


def _bytes(tree) -> int:
  return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def ways(module, params, mask):
  """name -> (jitted forward(x), weights it holds)."""
  dense = jax.jit(lambda p, x: module.apply({"params": p}, x))
  masked_params = masks.apply(params, mask)
  small = export.export_mlp(module, params, mask)
  names = [n for n in params if "kernel" in params[n]]
  order = [f"fc{i + 1}" for i in range(len(module.hidden))] + ["out"]
  assert sorted(order) == sorted(names)
  sp = {n: (sparse.BCOO.fromdense(masked_params[n]["kernel"]), masked_params[n]["bias"]) for n in order}
  act = getattr(jax.nn, module.activation)

  def bcoo_forward(layers, x):
    h = x.reshape((x.shape[0], -1))
    for i, n in enumerate(order):
      w, b = layers[n]
      h = h @ w + b
      if i < len(order) - 1:
        h = act(h)
    return h
  bcoo = jax.jit(bcoo_forward)
  exported = jax.jit(lambda p, x: small.module.apply({"params": p}, x.reshape((x.shape[0], -1))[:, small.inputs]))
  return {
      "dense": (lambda x: dense(params, x), _bytes(params)),
      "masked": (lambda x: dense(masked_params, x), _bytes(params) + _bytes(mask)),
      "exported": (lambda x: exported(small.params, x), _bytes(small.params) + small.inputs.nbytes),
      "bcoo": (lambda x: bcoo(sp, x), sum(_bytes((w.data, w.indices, b)) for w, b in sp.values())),
  }


def main(argv):
  del argv
  spec = models.get("lenet_300_100")
  module = spec.build(10)
  params = module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  roles = spec.layer_roles(params)
  rounds = sorted(set(map(int, _ROUNDS.value)))
  if _WORKDIR.value:
    found = _masks_from_workdir(pathlib.Path(_WORKDIR.value), rounds, params)
  else:
    found = _imp_masks(rounds, params, roles)
  rng = np.random.default_rng(0)
  for r, mask in found.items():
    density = float(masks.density(mask, roles))
    fns = ways(module, params, mask)
    for batch in map(int, _BATCHES.value):
      x = jnp.asarray(rng.standard_normal((batch, 28, 28, 1)), jnp.float32)
      for fn, _ in fns.values():
        jax.block_until_ready(fn(x))
      times = {name: [] for name in fns}
      for rep in range(_REPEATS.value):
        for name in common.rotated(list(fns), rep):  # no way always first (or after the same one)
          t0 = time.perf_counter()
          jax.block_until_ready(fns[name][0](x))
          times[name].append(time.perf_counter() - t0)
      base = statistics.median(times["dense"])
      for name, (_, nbytes) in fns.items():
        med = statistics.median(times[name])
        common.emit({"bench": "inference", "round": r, "density": density, "batch": batch, "way": name,
                     "seconds": med, "examples_per_s": batch / med, "ratio_to_dense": med / base,
                     "weight_bytes": nbytes, "repeats": _REPEATS.value, **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
