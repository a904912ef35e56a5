r"""Does a ticket run faster? Inference of LeNet-300-100 or Conv-2/4/6 tickets, at each density.

  python -m benchmarks.inference                                   # IMP-like masks, the paper's ladder
  python -m benchmarks.inference --workdir=workdirs/lenet_01_20k   # the masks a run found (its trial 0)
  python -m benchmarks.inference --model=conv4 --sparsity_type=units --batches=1,100  # whole channels

For each density and batch size (`--batches`, default 1 and 1,000), one JSON line per way:
- `dense`: the unpruned network (the baseline every ratio is to);
- `masked`: the ticket as ltjax trains it, a dense matmul over weights that are 0 where pruned;
- `exported`: `ltjax.models.export`'s narrower dense network (dead units and unread inputs gone);
- `bcoo`: every kernel as a `jax.experimental.sparse.BCOO` matrix (only live weights stored; MLPs
  only: BCOO has no convolution).
Each line has the median latency of a jitted forward pass over `--repeats` calls (the four ways
alternated within each repeat, their order rotated), throughput in examples/s, `ratio_to_dense`
(same run), the bytes of the weights the way keeps (BCOO: values and int32 indices; masked: weights
and masks), and `flops_per_example`, the forward pass's matmul and convolution FLOPs counted from
shapes (`benchmarks.flops`; a masked network's zeros count, BCOO's sparse products are not counted).
Without `--workdir`, masks come from magnitude pruning θ0 by `--sparsity_type` (single weights or
whole units and channels, as `experiments.lottery` prunes) at the paper's rates for the network
(its preset's: LeNet fc 20%, output 10%; Conv-2/4 conv 10%, Conv-6 15%) to the rounds in
`--rounds`. Weights do not change the speed of a fixed shape, and the unit counts per round are
IMP's, so θ0's masks time what a trained ticket's would.
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
from benchmarks.flops import shape_flops
from experiments import cli
from ltjax import configs, models, wiring
from ltjax.core import masks, pruning, structure
from ltjax.methods import structured
from ltjax.models import export
from ltjax.runs import results

# The networks `export` takes, with the preset whose rates they prune at and their input shape.
NETWORKS = {"lenet_300_100": ("lenet_mnist", (28, 28, 1)), "conv2": ("conv2_cifar10", (32, 32, 3)),
            "conv4": ("conv4_cifar10", (32, 32, 3)), "conv6": ("conv6_cifar10", (32, 32, 3))}

_MODEL = flags.DEFINE_enum("model", "lenet_300_100", list(NETWORKS), "The network.")
_SPARSITY = flags.DEFINE_enum("sparsity_type", "unstructured", ["unstructured", "units"],
                              "Without --workdir: prune single weights or whole units and channels.")
_WORKDIR = flags.DEFINE_string("workdir", "", "A workdir of --model whose masks/round_*.npz to use.")
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
          cli.fail(f"workdir: {path} holds {layer}/{leaf} of shape {m.shape[1:]}, not {_MODEL.value}'s {p.shape} "
                   "(--model)")
        mask[layer][leaf] = jnp.ones(p.shape, bool) if m is None else jnp.asarray(m[0])
    out[r] = mask
  return out


def _imp_masks(rounds: list[int], params, roles, rates, kind: structure.Structure):
  """θ0's masks after each round in `rounds` of magnitude IMP by `kind` (scored on θ0 itself)."""
  rates = pruning.rates_tree(roles, rates)
  mask, out = masks.ones(params), {}
  chain = structure.unit_chain(params) if kind.kind == "units" else ()
  stack = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
  score = stack(jax.tree.map(jnp.abs, params))
  for r in range(max(rounds) + 1):
    if r in rounds:
      out[r] = mask
    if kind.kind == "unstructured":
      mask = pruning.prune_round(params, params, mask, roles, rates)
    else:
      mask = jax.tree.map(lambda x: x[0], structured.next_masks(kind, chain, score, stack(mask), rates, roles, r))
  return out


def _bytes(tree) -> int:
  return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def ways(module, params, mask):
  """name -> (jitted forward(x), weights it holds)."""
  dense = jax.jit(lambda p, x: module.apply({"params": p}, x))
  masked_params = masks.apply(params, mask)
  small = export.export(module, params, mask)
  out = {
      "dense": (lambda x: dense(params, x), _bytes(params)),
      "masked": (lambda x: dense(masked_params, x), _bytes(params) + _bytes(mask)),
  }
  if small.inputs is None:  # a conv net reads every input
    exported = jax.jit(lambda p, x: small.module.apply({"params": p}, x))
    out["exported"] = (lambda x: exported(small.params, x), _bytes(small.params))
    return out
  exported = jax.jit(lambda p, x: small.module.apply({"params": p}, x.reshape((x.shape[0], -1))[:, small.inputs]))
  out["exported"] = (lambda x: exported(small.params, x), _bytes(small.params) + small.inputs.nbytes)
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
  out["bcoo"] = (lambda x: bcoo(sp, x), sum(_bytes((w.data, w.indices, b)) for w, b in sp.values()))
  return out


def main(argv):
  del argv
  preset, shape = NETWORKS[_MODEL.value]
  spec = models.get(_MODEL.value)
  module = spec.build(10)
  params = module.init(jax.random.key(0), jnp.zeros((1, *shape)))["params"]
  roles = spec.layer_roles(params)
  rounds = sorted(set(map(int, _ROUNDS.value)))
  if _WORKDIR.value and flags.FLAGS["sparsity_type"].present:
    cli.fail("sparsity_type: the masks come from --workdir, whatever their type; give one or the other")
  if _WORKDIR.value:
    found = _masks_from_workdir(pathlib.Path(_WORKDIR.value), rounds, params)
  else:
    kind = structure.parse(_SPARSITY.value)
    found = _imp_masks(rounds, params, roles, wiring.role_rates(configs.get(preset)), kind)
  sparsity = "from " + _WORKDIR.value if _WORKDIR.value else _SPARSITY.value
  rng = np.random.default_rng(0)
  exported = {}
  for r, mask in found.items():  # every round exports before any is timed: no half-printed table
    try:
      exported[r] = ways(module, params, mask)
    except export.ExportError as e:
      cli.fail(f"rounds: round {r} ({float(masks.density(mask, roles)):.3%} of the weights) cannot be exported: {e}")
  for r, mask in found.items():
    density = float(masks.density(mask, roles))
    fns = exported[r]
    one = jnp.zeros((1, *shape), jnp.float32)
    flops = {name: None if name == "bcoo" else shape_flops(fn, one) for name, (fn, _) in fns.items()}
    for batch in map(int, _BATCHES.value):
      x = jnp.asarray(rng.standard_normal((batch, *shape)), jnp.float32)
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
        common.emit({"bench": "inference", "model": _MODEL.value, "sparsity_type": sparsity, "round": r,
                     "density": density, "batch": batch, "way": name, "seconds": med,
                     "examples_per_s": batch / med, "ratio_to_dense": med / base, "weight_bytes": nbytes,
                     "flops_per_example": flops[name], "repeats": _REPEATS.value, **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
