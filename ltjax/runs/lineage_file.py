"""The lineage a run continues from, as a small file beside its records: workdir/lineage.npz.

A round's orbax checkpoint holds every weight the next round could use (megabytes per trial for
LeNet), which is not something to commit. What the next round needs beyond what the config
reproduces (theta_0 comes from the seed) is small: the masks, bit-packed, and what finding them
cost; and only where the run has them, theta_k (rewinding), the trained tickets (fine-tuning) and
the trained dense weights (a mode that prunes those, `Mode.prunes_dense`). With this file and the
records, a copy of a workdir without its checkpoints continues where it stopped: a long study can
be committed round by round and carried on by another machine.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import flax.serialization
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ltjax import files
from ltjax.methods import modes
from ltjax.runs import results
from ltjax.runs.validation import UsageError

FILE = "lineage.npz"
PREVIOUS = "lineage.previous.npz"  # the round before: points side by side, killed between their
# writes, still share one without their checkpoints
STARTS = "lineage.start.{}.npz"  # theta_k (or a fine-tuning run's trained tickets), by content
_SEP = "/"


def _flat(lineage) -> dict[str, np.ndarray]:
  """The lineage's arrays by path ('mask/params/Dense_0/kernel', 'found_after'), on the host."""
  tree = flax.serialization.to_state_dict(lineage)
  return {k: (v if v is traverse_util.empty_node else np.asarray(v))
          for k, v in traverse_util.flatten_dict(tree, sep=_SEP, keep_empty_nodes=True).items()}


def _field(key: str) -> str:
  return key.split(_SEP, 1)[0]


def _fingerprint(flat: dict) -> np.ndarray:
  """Per trial, the sum of |theta_0|: the file fits only the initial weights it was made from."""
  leaves = [x for k, x in flat.items() if _field(k) == "init_params" and isinstance(x, np.ndarray)]
  return sum(np.abs(x.astype(np.float64)).reshape(x.shape[0], -1).sum(1) for x in leaves)


def save(workdir: pathlib.Path | str, lineage, cfg) -> None:
  """Write what `lineage` holds beyond the config's fresh start (atomically, replacing the last)."""
  flat = _flat(lineage)
  arrays = {"round": np.int64(lineage.round), "fingerprint": _fingerprint(flat)}
  keep = {"mask", "found_after"}
  if any(not np.array_equal(x, flat["mask" + k[len("inverted_mask"):]]) for k, x in flat.items()
         if _field(k) == "inverted_mask" and isinstance(x, np.ndarray)):
    keep.add("inverted_mask")  # where the mode draws one (the 'inverted' control); else it is the mask
  starts = {k: x for k, x in flat.items()
            if _field(k) in ("start_params", "start_model_state") and isinstance(x, np.ndarray)}
  workdir = pathlib.Path(workdir)
  if any(not np.array_equal(x, flat["init_" + k[len("start_"):]]) for k, x in starts.items()):
    # theta_k, or the trained tickets a fine-tuning run goes on from: in a file of their own
    arrays["starts"] = np.str_(_save_starts(workdir, {f"array:{k}": x for k, x in starts.items()}))
  if modes.get(cfg.prune.mode).prunes_dense:
    keep.add("dense_params")
  for key, x in flat.items():
    if _field(key) not in keep or not isinstance(x, np.ndarray):
      continue
    if x.dtype == bool:
      arrays[f"bits:{key}"], arrays[f"shape:{key}"] = np.packbits(x, axis=None), np.asarray(x.shape)
    else:
      arrays[f"array:{key}"] = x
  if (workdir / FILE).exists():
    os.replace(workdir / FILE, workdir / PREVIOUS)
  files.write_atomic(workdir / FILE, lambda f: np.savez_compressed(f, **arrays))
  remove_unused_starts(workdir)


def remove_unused_starts(workdir: pathlib.Path) -> None:
  """Delete the start-weight files that neither lineage file names (all of them, with neither)."""
  used = set()
  for name in (FILE, PREVIOUS):
    if (workdir / name).exists():
      with np.load(workdir / name) as f:
        used |= {str(f["starts"])} if "starts" in f.files else set()
  for old in workdir.glob(STARTS.format("*")):
    if old.name not in used:
      old.unlink()


def _save_starts(workdir: pathlib.Path, arrays: dict[str, np.ndarray]) -> str:
  """The start weights' file, named by their content: a rewinding run's theta_k is written once
  and stays the same file round after round (committed once, not once per round)."""
  digest = hashlib.sha256()
  for k in sorted(arrays):
    digest.update(k.encode() + np.ascontiguousarray(arrays[k]).tobytes())
  name = STARTS.format(digest.hexdigest()[:16])
  if not (workdir / name).exists():
    files.write_atomic(workdir / name, lambda f: np.savez_compressed(f, **arrays))
  return name


def rounds(workdir: pathlib.Path | str) -> dict[int, pathlib.Path]:
  """{round the lineage starts: its file} of the lineage files in `workdir` that can continue
  it: the round before's records and curves are on disk (a file ahead of them, say one copied
  from a live run, would lose that round's records for good). Reads no weights."""
  workdir = pathlib.Path(workdir)
  done = {r["round"] for r in results.read(workdir)}
  out = {}
  for name in (PREVIOUS, FILE):
    path = workdir / name
    if path.exists():
      r = int(_read(path, ("round",))["round"])
      if r - 1 in done and (workdir / "curves" / f"round_{r - 1:02d}.npz").exists():
        out[r] = path
  return out


def _read(path: pathlib.Path, keys=None) -> dict[str, np.ndarray]:
  try:
    with np.load(path) as f:
      return {k: f[k] for k in (f.files if keys is None else keys)}
  except (OSError, ValueError, KeyError, EOFError) as e:
    raise UsageError(f"workdir: {path} is unreadable ({e}); remove it, or start over with --restart") from None


def load(path: pathlib.Path | str, like):
  """The lineage saved in `path` (a file of `rounds`), on top of `like`: the fresh lineage of the
  same config, which gives theta_0 and every field the file leaves out."""
  path = pathlib.Path(path)
  fix = f"remove {path}, or start over with --restart"
  arrays = _read(path)
  round_index, fingerprint = int(arrays.pop("round")), arrays.pop("fingerprint")
  if "starts" in arrays:
    starts = path.parent / str(arrays.pop("starts"))
    if not starts.exists():
      raise UsageError(f"workdir: {path} needs {starts.name}, which is missing; {fix}")
    arrays.update(_read(starts))
  flat = _flat(like)
  mine = _fingerprint(flat)
  if np.shape(fingerprint) != np.shape(mine) or not np.allclose(fingerprint, mine, rtol=1e-5, atol=0):
    raise UsageError(f"workdir: {path} was made from other initial weights than this config's "
                     f"(seed, trials, model or initializer); {fix}")
  for name, x in arrays.items():
    kind, key = name.split(":", 1)
    if kind == "shape":
      continue
    if kind == "bits":
      shape = tuple(int(n) for n in arrays[f"shape:{key}"])
      x = np.unpackbits(x, count=int(np.prod(shape))).astype(bool).reshape(shape)
    if not isinstance(flat.get(key), np.ndarray) or flat[key].shape != x.shape:
      raise UsageError(f"workdir: {path} does not fit this config's network ({key}); {fix}")
    flat[key] = x.astype(flat[key].dtype)
  if not any(k.startswith("bits:inverted_mask") for k in arrays):
    flat.update({"inverted_" + k: x for k, x in flat.items() if _field(k) == "mask"})
  tree = traverse_util.unflatten_dict(
      {k: (v if v is traverse_util.empty_node else jnp.asarray(v)) for k, v in flat.items()}, sep=_SEP)
  return flax.serialization.from_state_dict(like, tree).replace(round=round_index)
