"""Masks found by another run: each pruned round trains the tickets' masks of another workdir's
round nearest each of `prune.densities` (`prune.masks_from`), trial t taking that run's trial t.

Two uses: training a mask longer or otherwise than the run that found it (IMP with short rounds,
its masks trained for the full schedule), and transferring tickets across datasets, optimizers or
seeds (Morcos et al. 2019). With the source's network and seed, each trial starts from the source's
own θ0, so the ticket is the source's winning ticket; with another seed, its mask on a new init.
The controls are those of any mode (reinit, random_mask: the mask shuffled within each layer).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.core import masks
from ltjax.core.pruning import PruningError
from ltjax.methods import modes

PyTree = Any
TOLERANCE = 0.05  # relative: a source round counts as at a density within 5% of it


def ticket_rounds(source: pathlib.Path) -> dict[int, tuple[float, dict[int, int]]]:
  """round -> (the tickets' density, {trial: finding_steps}) of a finished workdir's records."""
  path = source / "results.jsonl"
  if not path.is_file():
    raise PruningError(f"prune.masks_from: {source} holds no results.jsonl (not a workdir of a lottery run)")
  out: dict[int, tuple[float, dict[int, int]]] = {}
  try:
    for line in path.read_text().splitlines():
      rec = json.loads(line)
      if rec["kind"] == "ticket":
        _, steps = out.setdefault(rec["round"], (float(rec["density"]), {}))
        steps[rec["trial"]] = int(rec.get("finding_steps", 0))
  except (ValueError, KeyError, TypeError) as e:
    raise PruningError(f"prune.masks_from: {path} is not a run's records ({e})") from None
  return out


def source_round(rounds: dict, density: float, source: pathlib.Path) -> int:
  """The source round whose tickets' density is nearest `density` (PruningError beyond TOLERANCE)."""
  pruned = {r: d for r, (d, _) in rounds.items() if r > 0}
  if not pruned:
    raise PruningError(f"prune.masks_from: {source} has no pruned round yet")
  best = min(pruned, key=lambda r: abs(pruned[r] - density))
  if abs(pruned[best] - density) > TOLERANCE * density:
    have = ", ".join(f"{100 * d:.3g}%" for d in sorted(set(pruned.values()), reverse=True))
    raise PruningError(f"prune.masks_from: {source} has no round at density {density:g} (within "
                       f"{TOLERANCE:.0%}); its rounds' tickets are at {have}")
  return best


def load(source: pathlib.Path, rnd: int, like: PyTree, trials: int) -> PyTree:
  """Round `rnd`'s ticket masks of trials 0..trials-1, as a tree like `like` (one network's shapes)."""
  path = source / "masks" / f"round_{rnd:02d}.npz"
  if not path.is_file():
    raise PruningError(f"prune.masks_from: {path} does not exist (the run's round {rnd} has no masks)")
  with np.load(path) as blob:
    leaves = masks.unpack_masks({k: blob[k] for k in blob.files})
  flat, treedef = jax.tree_util.tree_flatten_with_path(like)
  names = [masks.path_str(p) for p, _ in flat]
  extra = sorted(set(leaves) - set(names))
  if extra:
    raise PruningError(f"prune.masks_from: {path} masks {', '.join(extra)}, which this network does not have")
  out = []
  for name, (_, leaf) in zip(names, flat):
    m = leaves.get(name)
    if m is None:
      raise PruningError(f"prune.masks_from: {path} has no mask for this network's {name}")
    if m.shape[1:] != tuple(leaf.shape):
      raise PruningError(f"prune.masks_from: {path} masks {name} as {m.shape[1:]}, this network's is "
                         f"{tuple(leaf.shape)}")
    if len(m) < trials:
      raise PruningError(f"prune.masks_from: {path} has {len(m)} trial(s), this run has trials={trials}")
    out.append(m[:trials])
  return jax.tree_util.tree_unflatten(treedef, out)


def check(setup) -> None:
  """Every density's round exists in the source, with masks of this network's shapes and enough trials."""
  cfg = setup.cfg
  source = pathlib.Path(cfg.prune.masks_from).expanduser()
  if not source.is_dir():
    raise PruningError(f"prune.masks_from: {source} is not a directory")
  rounds = ticket_rounds(source)
  shapes = jax.eval_shape(setup.init_fn, jax.random.key(0))[0]
  for d in cfg.prune.densities:
    load(source, source_round(rounds, d, source), shapes, cfg.trials)


@modes.register("given", check=check)
def find(request: modes.Request) -> modes.Found:
  """Given: train the masks another run found (prune.masks_from), at each of prune.densities."""
  cfg = request.setup.cfg
  source = pathlib.Path(cfg.prune.masks_from).expanduser()
  rounds = ticket_rounds(source)
  rnd = source_round(rounds, cfg.prune.densities[request.round_index], source)
  one = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape[1:], m.dtype), request.lineage.mask)
  mask = jax.tree.map(jnp.asarray, load(source, rnd, one, cfg.trials))
  steps = rounds[rnd][1]
  return modes.Found(mask, jnp.asarray([steps.get(t, 0) for t in range(cfg.trials)], jnp.int32))
