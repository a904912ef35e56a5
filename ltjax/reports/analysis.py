"""What the tickets of a workdir look like: mask overlap, per-unit connectivity, initial values.

Pure functions on numpy masks and weights (boolean masks, True = weight kept), and `Run`, which
reads a workdir written by `experiment.train_and_evaluate` into them (theta_0 from its checkpoints,
never rebuilt from the model). Nothing here trains or writes into the workdir; the figures modules
draw, `ltjax.reports.summary` writes the report and `experiments/report.py` is the binary.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import re
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from ltjax.core.masks import path_str
from ltjax.runs import checkpoint, results
from ltjax.runs.results import unpack_masks  # noqa: F401  (also part of this module's API)

# Input shapes of the datasets a run may name: the input-connectivity figure draws pixels.
INPUT_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "kmnist": (28, 28, 1),
                "cifar10": (32, 32, 3), "cifar100": (32, 32, 3), "svhn_cropped": (32, 32, 3),
                "synthetic": (8, 8, 1)}  # experiment.load_dataset's synthetic default
_CACHED_ROUNDS = 4
# Every registered model names its logits layer 'out' (ltjax/models); the report reads no model
# code, so a network of one's own with another name only sorts its layers differently.
OUTPUT_LAYER = "out"
KIND_LABELS = {"ticket": "winning ticket", "reinit": "random reinit", "random_mask": "random mask",
               "inverted": "inverted scores", "twin": "twin (other data order)",
               "scratch": "scratch (own schedule)", "twin_reinit": "twin of the random reinit",
               "twin_random_mask": "twin of the random mask"}


# A sparse-training run's 'ticket' rows are the method's own networks, not winning tickets.
SPARSE_TRAINED = {"gmp": "GMP network", "set": "SET network", "rigl": "RigL network",
                  "static": "static sparse network"}


def kind_label(kind: str, runs: Sequence["Run"] = ()) -> str:
  """What a kind is called in figures and tables of `runs` (the ticket named by its method where
  every run trains sparse networks the same way)."""
  found = {((run.config or {}).get("prune") or {}).get("mode") for run in runs}
  if kind == "ticket" and len(found) == 1 and next(iter(found)) in SPARSE_TRAINED:
    return SPARSE_TRAINED[next(iter(found))]
  budgets = {((run.config or {}).get("scratch") or {}).get("steps_scale") for run in runs}
  if kind == "scratch" and len(budgets) == 1 and isinstance(scale := next(iter(budgets)), (int, float)):
    # Liu et al.'s names: Scratch-E trains as many steps as the ticket, Scratch-B more.
    return "Scratch-E (same steps)" if scale == 1 else f"Scratch-B ({scale:g}x steps)"
  return KIND_LABELS.get(kind, kind)


class ReportError(ValueError):
  """Bad input (missing workdir, no results): reported to the user as one line."""


# ---------------------------------------------------------------- mask overlap
def jaccard(a: np.ndarray, b: np.ndarray) -> float:
  """|a and b| / |a or b| of two boolean masks: 1 for identical masks, 0 for disjoint ones.

  Two empty masks are identical and score 1.
  """
  a, b = np.asarray(a, bool), np.asarray(b, bool)
  if a.shape != b.shape:
    raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
  union = np.count_nonzero(a | b)
  return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def pairwise_jaccard(masks: np.ndarray) -> np.ndarray:
  """Jaccard index of every pair of masks stacked on axis 0 (trials); empty for one mask."""
  n = len(masks)
  return np.array([jaccard(masks[i], masks[j]) for i in range(n) for j in range(i + 1, n)])


def chance_jaccard(density) -> np.ndarray:
  """Expected Jaccard of two independent random masks of density d (the overlap by chance).

  Each keeps d*n of n weights, so they share about d^2*n and together cover (2d - d^2)*n.
  """
  d = np.asarray(density, float)
  return d / (2 - d)


# ---------------------------------------------------------------- connectivity
def incoming(kernel_mask: np.ndarray) -> np.ndarray:
  """Surviving incoming connections per output unit of a dense kernel mask [in, out]."""
  return np.asarray(kernel_mask, bool).sum(axis=0)


def outgoing(kernel_mask: np.ndarray) -> np.ndarray:
  """Surviving outgoing connections per input unit of a dense kernel mask [in, out]."""
  return np.asarray(kernel_mask, bool).sum(axis=1)


@dataclasses.dataclass
class UnitConnectivity:
  """Surviving connections into and out of each unit of a hidden dense layer."""
  layer: str          # the kernel whose output units these are, e.g. 'fc1/kernel'
  next_layer: str     # the kernel reading them, e.g. 'fc2/kernel'
  incoming: np.ndarray
  outgoing: np.ndarray
  fan_in: int
  fan_out: int

  @property
  def dead(self) -> int:
    """Units cut off from the input or the output: they cannot affect the logits."""
    return int(np.count_nonzero((self.incoming == 0) | (self.outgoing == 0)))


def hidden_connectivity(kernels: Mapping[str, np.ndarray]) -> list[UnitConnectivity]:
  """Per hidden unit, for each consecutive pair of dense kernels [in, n] -> [n, out].

  `kernels` is ordered input to output (see `layer_order`). Only 2-D kernels count, and only
  pairs whose shapes chain: conv layers and the conv-to-dense flatten have no unit to speak of.
  """
  names = list(kernels)
  out = []
  for a, b in zip(names, names[1:]):
    ka, kb = np.asarray(kernels[a], bool), np.asarray(kernels[b], bool)
    if ka.ndim == 2 and kb.ndim == 2 and ka.shape[1] == kb.shape[0]:
      out.append(UnitConnectivity(a, b, incoming(ka), outgoing(kb), ka.shape[0], kb.shape[1]))
  return out


def layer_order(names: Sequence[str], output_layer: str = OUTPUT_LAYER) -> list[str]:
  """Leaf paths input to output: natural sort (fc2 before fc10), the output layer last."""
  def key(name):
    parts = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
    return (name.split("/")[0] == output_layer, [(isinstance(p, str), p) for p in parts])
  return sorted(names, key=key)


# ---------------------------------------------------------------- initial values
def survivors(init: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """The initial values of the weights a mask keeps (flat)."""
  return np.asarray(init)[np.asarray(mask, bool)]


def value_stats(values: np.ndarray, reference: np.ndarray) -> dict[str, float]:
  """How `values` (survivors' init) sit against `reference` (all weights' init) around zero.

  abs_ratio: mean |value| over the reference's (1 = like a random subset, > 1 = away from zero);
  near_zero: fraction within half a reference std of zero (a random subset keeps the reference's).
  """
  values, reference = np.ravel(values), np.ravel(reference)
  scale = float(np.std(reference))
  ref_abs = float(np.mean(np.abs(reference)))
  empty = values.size == 0
  abs_ratio = math.nan if empty or ref_abs == 0 else float(np.mean(np.abs(values))) / ref_abs
  return {"n": int(values.size),
          "mean": math.nan if empty else float(values.mean()),
          "std": math.nan if empty else float(values.std()),
          "abs_ratio": abs_ratio,
          "near_zero": math.nan if empty else float(np.mean(np.abs(values) < 0.5 * scale)),
          "near_zero_reference": float(np.mean(np.abs(reference) < 0.5 * scale))}


def spread(items: Sequence[Any], k: int) -> list[Any]:
  """At most k items evenly spread over `items`, first and last included (e.g. rounds to show)."""
  items = list(items)
  if len(items) <= k:
    return items
  idx = np.unique(np.round(np.linspace(0, len(items) - 1, k)).astype(int))
  return [items[i] for i in idx]


# ---------------------------------------------------------------- reading a workdir
def planned_rounds(config: Mapping[str, Any]) -> int:
  """The rounds a run's config (its config.json's `config`) plans, the dense round 0 included."""
  p = config.get("prune", {})
  return 1 + (p.get("rounds", 0) if p.get("mode", "iterative") == "iterative" else len(p.get("densities", ())))


@dataclasses.dataclass
class Run:
  """One workdir's results, read lazily: records now, curves/masks/initial weights on demand."""
  workdir: pathlib.Path
  label: str
  config: dict[str, Any]
  records: list[dict[str, Any]]
  _masks: dict[int, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict, repr=False,
                                                               compare=False)
  machines: tuple[str, ...] = ()  # what it trained on (config.json), in order

  @functools.cached_property
  def summary(self) -> list[dict[str, Any]]:
    return results.summarize(self.records)

  @property
  def rounds(self) -> list[int]:
    return sorted({r["round"] for r in self.records})

  @property
  def kinds(self) -> list[str]:
    present = {r["kind"] for r in self.records}
    return [k for k in KIND_LABELS if k in present] + sorted(present - set(KIND_LABELS))

  @property
  def trials(self) -> int:
    return len({r["trial"] for r in self.records})

  @property
  def layers(self) -> list[str]:
    """Prunable leaves, input to output."""
    names = {k for r in self.records for k in r.get("layer_density", {})}
    return layer_order(names)

  def density(self, round_index: int) -> float:
    """Fraction of prunable weights the round's winning tickets keep (mean over trials)."""
    return float(np.mean([r["density"] for r in self._tickets(round_index)]))

  def layer_density(self, round_index: int) -> dict[str, float]:
    recs = self._tickets(round_index)
    return {k: float(np.mean([r["layer_density"][k] for r in recs])) for k in self.layers}

  def _tickets(self, round_index: int) -> list[dict[str, Any]]:
    recs = [r for r in self.records if r["round"] == round_index]
    return [r for r in recs if r["kind"] == "ticket"] or recs

  def curves(self, round_index: int) -> dict[str, np.ndarray] | None:
    """curves/round_XX.npz with 'kind' ([K] names) added; None if not written (yet)."""
    path = self.workdir / "curves" / f"round_{round_index:02d}.npz"
    if not path.exists():
      return None
    with np.load(path) as z:
      out = {k: z[k] for k in z.files}
    out["kind"] = out["kinds"][out["ids"][:, 1]]
    return out

  def masks(self, round_index: int) -> dict[str, np.ndarray] | None:
    """Each trial's ticket mask of the round, {leaf path: bool [trials, ...]}; None if absent.

    The last few rounds read stay cached: several figures look at the same rounds, and a conv
    net's masks take a while to unpack (but all rounds at once would not fit in memory).
    """
    if round_index in self._masks:
      return self._masks[round_index]
    path = self.workdir / "masks" / f"round_{round_index:02d}.npz"
    if not path.exists():
      return None
    with np.load(path) as z:
      out = unpack_masks({k: z[k] for k in z.files})
    self._masks[round_index] = out
    while len(self._masks) > _CACHED_ROUNDS:
      self._masks.pop(next(iter(self._masks)))
    return out

  @functools.cached_property
  def init_params(self) -> dict[str, np.ndarray] | None:
    """theta_0 of every trial, {leaf path: [trials, ...]}, as the run checkpointed it (see
    `initial_params`); None if the workdir holds no round checkpoint."""
    return initial_params(self.workdir)


def initial_params(workdir: pathlib.Path | str) -> dict[str, np.ndarray] | None:
  """theta_0 stacked over trials, {leaf path: [trials, ...]}, from the newest readable round
  checkpoint (the lineage every round checkpoint holds keeps init_params); None if none reads."""
  saved = checkpoint.read(workdir, "state", "init_params")
  if saved is None:
    return None
  flat = jax.tree_util.tree_flatten_with_path(saved[1])[0]
  return {path_str(p): np.asarray(leaf) for p, leaf in flat}


def load_run(workdir: pathlib.Path | str, label: str | None = None) -> Run:
  """Read a workdir's config and records; ReportError if it holds no results."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise ReportError(f"workdir {workdir} does not exist")
  if not (workdir / results.RESULTS).exists():
    raise ReportError(f"workdir {workdir} has no {results.RESULTS} (not a lottery workdir, or no "
                      "round has finished yet)")
  try:
    recs = results.read(workdir)
  except results.RecordsError as e:
    raise ReportError(str(e)) from None
  if not recs:
    raise ReportError(f"{workdir / results.RESULTS} holds no records")
  path = workdir / "config.json"
  config, machines = read_config(path) if path.exists() else ({}, ())
  return Run(workdir, label or workdir.resolve().name, config, recs, machines=machines)


def read_config(path: pathlib.Path) -> tuple[dict[str, Any], tuple[str, ...]]:
  """A run's config.json: its config ({} where it has none) and the machines it trained on."""
  try:
    saved = json.loads(path.read_text())
    config, machines = saved.get("config", {}), tuple(m for m in saved.get("machines", ()) if isinstance(m, str))
  except (json.JSONDecodeError, AttributeError, TypeError):
    raise ReportError(f"{path} is not valid JSON") from None
  if not isinstance(config, dict):
    raise ReportError(f"{path} is not a run's config.json (no config mapping)")
  return config, machines
