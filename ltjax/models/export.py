"""A ticket as a smaller dense network: what a sparse mask buys at inference without sparse kernels.

`export_mlp` takes an `MLP` (LeNet-300-100 and its kin), its params and a mask, and removes:
- every hidden unit with no live outgoing weight (it contributes nothing);
- every hidden unit with no live incoming weight: its output is the constant act(bias), folded
  into the next layer's bias through its live outgoing weights;
- every input with no live fan-out (the exported net reads `x_flat[:, inputs]`);
repeating until nothing changes (removing a unit can strand the units that fed it or that it fed).
What is left is an `MLP` with narrower hidden layers whose outputs equal the masked network's up to
float rounding (`tests/test_export.py`), runnable with a plain `flax` `apply`. Pruned weights inside
the kept layers stay as zeros: their speed is the sparse kernels' question (`benchmarks`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from ltjax.models.mlp import MLP

PyTree = Any


class ExportError(ValueError):
  """A network or mask that cannot be exported (one line)."""


@dataclasses.dataclass(frozen=True)
class Exported:
  """The smaller network: `module.apply({'params': params}, x_flat[:, inputs])`."""
  module: MLP
  params: PyTree
  inputs: np.ndarray  # indices of the flattened inputs the network still reads

  def apply(self, x) -> jax.Array:
    flat = jnp.asarray(x).reshape((x.shape[0], -1)).astype(jnp.float32)
    return self.module.apply({"params": self.params}, flat[:, self.inputs])

  def num_weights(self) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(self.params)))


def _act(name: str, x: np.ndarray) -> np.ndarray:
  return np.asarray(getattr(jax.nn, name)(jnp.asarray(x, jnp.float32)), np.float64)


def export_mlp(module: MLP, params: PyTree, mask: PyTree) -> Exported:
  """The ticket (`params` under `mask`, one network) as a narrower dense `MLP`."""
  if not isinstance(module, MLP):
    raise ExportError(f"export handles ltjax's MLP (fc1..fcN, out) so far, got {type(module).__name__}")
  names = [f"fc{i + 1}" for i in range(len(module.hidden))] + ["out"]
  try:
    kernels = [np.asarray(params[n]["kernel"], np.float64) * np.asarray(mask[n]["kernel"]) for n in names]
    biases = [np.asarray(params[n]["bias"], np.float64).copy() for n in names]
  except (KeyError, TypeError) as e:
    raise ExportError(f"params and mask must hold kernel and bias of {', '.join(names)}: missing {e}") from None
  live_in = np.ones(kernels[0].shape[0], bool)
  units = [np.ones(k.shape[1], bool) for k in kernels[:-1]]   # hidden units still in the network
  changed = True
  while changed:
    changed = False
    live_in_new = live_in & (kernels[0] != 0).any(axis=1)  # an input read by a live weight
    changed |= bool((live_in_new != live_in).any())
    live_in = live_in_new
    for l in range(len(units)):
      before = live_in if l == 0 else units[l - 1]
      fed = ((kernels[l] != 0) & before[:, None]).any(axis=0)
      feeds = ((kernels[l + 1] != 0) & (units[l + 1] if l + 1 < len(units) else True)).any(axis=1)
      dead = units[l] & ~feeds                    # contributes nothing
      const = units[l] & feeds & ~fed             # outputs act(bias): fold it into the next bias
      if const.any():
        c = _act(module.activation, biases[l][const])
        biases[l + 1] += c @ kernels[l + 1][const]
        kernels[l + 1][const] = 0.0
      if (dead | const).any():
        units[l] = units[l] & ~dead & ~const
        kernels[l][:, ~units[l]] = 0.0
        changed = True
  inputs = np.flatnonzero(live_in)
  keep = [inputs] + [np.flatnonzero(u) for u in units]
  out = {}
  for l, name in enumerate(names):
    rows = keep[l]
    cols = keep[l + 1] if l + 1 < len(keep) else np.arange(kernels[l].shape[1])
    out[name] = {"kernel": jnp.asarray(kernels[l][np.ix_(rows, cols)], jnp.float32),
                 "bias": jnp.asarray(biases[l][cols], jnp.float32)}
  if any(len(k) == 0 for k in keep[1:]) or len(inputs) == 0:
    widths = ", ".join(str(len(k)) for k in keep)
    raise ExportError(f"the ticket has no path from its inputs to its outputs (live widths {widths}); "
                      "its outputs are constants")
  small = module.clone(hidden=tuple(len(k) for k in keep[1:]))
  return Exported(small, out, inputs)


def save(path: str | pathlib.Path, exported: Exported) -> None:
  """`path`.msgpack (the params and input indices) and `path`.json (the network's shape)."""
  path = pathlib.Path(path)
  path.with_suffix(".msgpack").write_bytes(flax.serialization.msgpack_serialize(
      {"params": jax.tree.map(np.asarray, exported.params), "inputs": exported.inputs}))
  path.with_suffix(".json").write_text(json.dumps({
      "model": "MLP", "hidden": list(exported.module.hidden), "num_classes": exported.module.num_classes,
      "activation": exported.module.activation, "num_inputs": int(len(exported.inputs))}, indent=2) + "\n")


def load(path: str | pathlib.Path) -> Exported:
  path = pathlib.Path(path)
  meta = json.loads(path.with_suffix(".json").read_text())
  blob = flax.serialization.msgpack_restore(path.with_suffix(".msgpack").read_bytes())
  module = MLP(hidden=tuple(meta["hidden"]), num_classes=meta["num_classes"], activation=meta["activation"])
  return Exported(module, jax.tree.map(jnp.asarray, blob["params"]), np.asarray(blob["inputs"]))
