"""A ticket as a smaller dense network: what a sparse mask buys at inference without sparse kernels.

`export` takes ltjax's MLPs (`export_mlp`) and conv nets (`export_conv`). `export_mlp` takes an
`MLP` (LeNet-300-100 and its kin), its params and a mask, and removes:
- every hidden unit with no live outgoing weight (it contributes nothing);
- every hidden unit with no live incoming weight: its output is the constant act(bias), folded
  into the next layer's bias through its live outgoing weights;
- every input with no live fan-out (the exported net reads `x_flat[:, inputs]`);
repeating until nothing changes (removing a unit can strand the units that fed it or that it fed).
What is left is an `MLP` with narrower hidden layers whose outputs equal the masked network's up to
float rounding (`tests/test_export.py`), runnable with a plain `flax` `apply`. Pruned weights inside
the kept layers stay as zeros: their speed is the sparse kernels' question (`benchmarks`).

`export_conv` does the same for a `ConvNet` (Conv-2/4/6) by channels and units, with one
exception kept exact: a conv channel with no live incoming weight feeding another conv is removed
only when its constant is 0 (relu(bias) = 0), since the next conv's zero padding makes a nonzero
constant's contribution depend on the position; into a dense layer it folds like an MLP's unit.
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

from ltjax.models.conv import ConvNet
from ltjax.models.mlp import MLP

PyTree = Any


class ExportError(ValueError):
  """A network or mask that cannot be exported (one line)."""


@dataclasses.dataclass(frozen=True)
class Exported:
  """The smaller network: `module.apply({'params': params}, x_flat[:, inputs])` (an MLP) or
  `module.apply({'params': params}, x)` (a conv net: `inputs` is None)."""
  module: Any
  params: PyTree
  inputs: np.ndarray | None  # indices of the flattened inputs the network still reads

  def apply(self, x) -> jax.Array:
    if self.inputs is None:
      return self.module.apply({"params": self.params}, jnp.asarray(x))
    flat = jnp.asarray(x).reshape((x.shape[0], -1)).astype(jnp.float32)
    return self.module.apply({"params": self.params}, flat[:, self.inputs])

  def num_weights(self) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(self.params)))


def _act(name: str, x: np.ndarray) -> np.ndarray:
  return np.asarray(getattr(jax.nn, name)(jnp.asarray(x, jnp.float32)), np.float64)


def export(module, params: PyTree, mask: PyTree) -> Exported:
  """The ticket as a smaller dense network of its own kind (ltjax's MLPs and conv nets)."""
  if isinstance(module, ConvNet):
    return export_conv(module, params, mask)
  return export_mlp(module, params, mask)


def _layers(names, params, mask):
  try:
    kernels = [np.asarray(params[n]["kernel"], np.float64) * np.asarray(mask[n]["kernel"]) for n in names]
    biases = [np.asarray(params[n]["bias"], np.float64).copy() for n in names]
  except (KeyError, TypeError) as e:
    raise ExportError(f"params and mask must hold kernel and bias of {', '.join(names)}: missing {e}") from None
  return kernels, biases


def export_mlp(module: MLP, params: PyTree, mask: PyTree) -> Exported:
  """The ticket (`params` under `mask`, one network) as a narrower dense `MLP`."""
  if not isinstance(module, MLP):
    raise ExportError(f"export handles ltjax's MLP (fc1..fcN, out) so far, got {type(module).__name__}")
  names = [f"fc{i + 1}" for i in range(len(module.hidden))] + ["out"]
  kernels, biases = _layers(names, params, mask)
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


def _reads(kernel: np.ndarray, channels: int) -> np.ndarray:
  """A dense kernel as [positions, channels, out], by the previous layer's channel each input
  row reads (after a conv's NHWC flatten, channel = row % channels; after a dense layer, one
  position). A view: writing to it writes the kernel."""
  return kernel.reshape(-1, channels, kernel.shape[-1])


def export_conv(module: ConvNet, params: PyTree, mask: PyTree) -> Exported:
  """The ticket (`params` under `mask`, one network) as a `ConvNet` with fewer channels and units."""
  if not isinstance(module, ConvNet):
    raise ExportError(f"export_conv handles ltjax's ConvNet (conv1..convN, fc1..fcN, out), got {type(module).__name__}")
  names = ([f"conv{i + 1}" for i in range(len(module.filters))] + [f"fc{i + 1}" for i in range(len(module.hidden))]
           + ["out"])
  kernels, biases = _layers(names, params, mask)
  keep = [np.ones(k.shape[-1], bool) for k in kernels[:-1]]  # each non-final layer's channels / units
  changed = True
  while changed:
    changed = False
    for l in range(len(keep)):
      k, nxt = kernels[l], kernels[l + 1]
      inputs = keep[l - 1] if l else np.ones(k.shape[-2], bool)
      fed = (k[..., inputs, :] != 0).any(axis=tuple(range(k.ndim - 1))) if k.ndim == 4 else (
          (_reads(k, len(inputs)) != 0) & inputs[None, :, None]).any(axis=(0, 1))
      out_keep = keep[l + 1] if l + 1 < len(keep) else np.ones(nxt.shape[-1], bool)
      by_channel = _reads(nxt, len(keep[l])) if nxt.ndim == 2 else None
      feeds = ((nxt[..., out_keep] != 0).any(axis=(0, 1, 3)) if nxt.ndim == 4 else
               (by_channel[..., out_keep] != 0).any(axis=(0, 2)))
      dead = keep[l] & ~feeds
      const = keep[l] & feeds & ~fed
      value = np.maximum(biases[l], 0.0)  # relu
      if nxt.ndim == 2:  # a constant channel (after pooling, at every position) folds into the bias
        biases[l + 1] += np.einsum("c,rco->o", value * const, by_channel)
        by_channel[:, const] = 0.0
      else:  # into a conv, only a zero constant goes: zero padding makes others depend on position
        const &= value == 0.0
      gone = dead | const
      if gone.any():
        keep[l] = keep[l] & ~gone
        k[..., gone] = 0.0
        changed = True
  if not all(kp.any() for kp in keep):
    raise ExportError("the ticket has no path from its inputs to its outputs (live widths "
                      f"{', '.join(str(int(kp.sum())) for kp in keep)}); its outputs are constants")
  out = {}
  for l, name in enumerate(names):
    k = kernels[l]
    cols = keep[l] if l < len(keep) else np.ones(k.shape[-1], bool)
    if l and k.ndim == 4:
      k = k[:, :, keep[l - 1]]
    elif l:
      k = _reads(k, len(keep[l - 1]))[:, keep[l - 1]].reshape(-1, k.shape[-1])
    out[name] = {"kernel": jnp.asarray(k[..., cols], jnp.float32), "bias": jnp.asarray(biases[l][cols], jnp.float32)}
  convs = len(module.filters)
  small = module.clone(filters=tuple(int(kp.sum()) for kp in keep[:convs]),
                       hidden=tuple(int(kp.sum()) for kp in keep[convs:]))
  return Exported(small, out, None)


def save(path: str | pathlib.Path, exported: Exported) -> None:
  """`path`.msgpack (the params, and an MLP's input indices) and `path`.json (the network's shape)."""
  path = pathlib.Path(path)
  blob = {"params": jax.tree.map(np.asarray, exported.params)}
  m = exported.module
  if isinstance(m, ConvNet):
    meta = {"model": "ConvNet", "filters": list(m.filters), "hidden": list(m.hidden), "num_classes": m.num_classes}
  else:
    blob["inputs"] = exported.inputs
    meta = {"model": "MLP", "hidden": list(m.hidden), "num_classes": m.num_classes, "activation": m.activation,
            "num_inputs": int(len(exported.inputs))}
  path.with_suffix(".msgpack").write_bytes(flax.serialization.msgpack_serialize(blob))
  path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load(path: str | pathlib.Path) -> Exported:
  path = pathlib.Path(path)
  meta = json.loads(path.with_suffix(".json").read_text())
  blob = flax.serialization.msgpack_restore(path.with_suffix(".msgpack").read_bytes())
  params = jax.tree.map(jnp.asarray, blob["params"])
  if meta["model"] == "ConvNet":
    module = ConvNet(filters=tuple(meta["filters"]), hidden=tuple(meta["hidden"]), num_classes=meta["num_classes"])
    return Exported(module, params, None)
  module = MLP(hidden=tuple(meta["hidden"]), num_classes=meta["num_classes"], activation=meta["activation"])
  return Exported(module, params, np.asarray(blob["inputs"]))
