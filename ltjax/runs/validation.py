"""Every config field's rule, checked in one pass before a run touches its workdir (the rules for one
value are `ltjax.runs.rules`).

Rules are data (`SCHEMA`: a dotted field name -> its type, bounds or choices; `CROSS`: rules that
relate fields), so an unknown field, a missing one, a value of the wrong type and an out-of-range
value all fail the same way: `ConfigError`, whose one-line message starts with the field's name.
What only the data can tell (the batch size against the training set) is `check_data`.
"""

from __future__ import annotations

from typing import Any, Iterable

from ltjax import data, importpath, lottery, models  # noqa: F401 -- lottery registers the built-in modes
from ltjax.configs import base
from ltjax.core import distributions, pruning, scores, structure, tickets
from ltjax.engine import optimizers, runtime
from ltjax.methods import modes
from ltjax.runs.rules import (  # noqa: F401 -- the rules, as callers and tests know them
    Bool, Choice, Float, Int, Mesh, Model, ModelKwargs, RoleOverrides, Seq, SparsityType, Str)


class UsageError(ValueError):
  """Bad input: reported to the user as one line, never a traceback."""


class ConfigError(UsageError):
  """A config field the run cannot honour; the message starts with the field's dotted name."""

  def __init__(self, field: str, problem: str):
    super().__init__(f"{field}: {problem}")
    self.field = field


RATE = Float(0.0, 1.0, hi_open=True)
SCHEMA: dict[str, Any] = {
    "name": Str(nonempty=True),
    "imports": Seq(Str(nonempty=True)),
    "model": Model(),
    "model_kwargs": ModelKwargs(),
    "dataset": Str(nonempty=True),
    "data_dir": Str(),
    "validation_size": Int(lo=1),
    "normalization": Choice(data.NORMALIZATIONS),
    "train.optimizer": Choice(optimizers.NAMES),
    "train.lr": Float(lo=0.0, lo_open=True),
    "train.momentum": Float(0.0, 1.0, hi_open=True),
    "train.nesterov": Bool(),
    "train.weight_decay": Float(lo=0.0),
    "train.warmup_steps": Int(lo=0),
    "train.milestones": Seq(Int(lo=0)),
    "train.decay": Float(0.0, 1.0, lo_open=True),
    "train.batch_size": Int(lo=1),
    "train.steps": Int(lo=1),
    "train.eval_every": Int(lo=1),
    "train.eval_batch_size": Int(lo=1),
    "train.matmul_precision": Choice(runtime.PRECISIONS),
    "prune.mode": Choice(modes.names),
    "prune.rounds": Int(lo=0),
    "prune.densities": Seq(Float(0.0, 1.0, lo_open=True)),
    "prune.conv_rate": RATE,
    "prune.fc_rate": RATE,
    "prune.output_rate": RATE,
    "prune.scope": Choice(("auto", pruning.LAYERWISE, pruning.GLOBAL)),
    "prune.score": Choice(scores.names),
    "prune.rewind_step": Int(lo=0),
    "prune.reset": Choice(("start", "none")),
    "prune.early_bird_threshold": Float(0.0, 1.0, lo_open=True, hi_open=True),
    "prune.early_bird_patience": Int(lo=1),
    "prune.distribution": Choice(("auto",) + distributions.DISTRIBUTIONS),
    "prune.sparsity_type": SparsityType(),
    "prune.update_every": Int(lo=0),
    "prune.update_begin": Int(lo=0),
    "prune.update_end": Int(lo=0),
    "prune.drop_fraction": Float(0.0, 1.0, lo_open=True, hi_open=True),
    "prune.masks_from": Str(),
    "roles": RoleOverrides(),
    "trials": Int(lo=1),
    "controls": Seq(Choice(("",) + tickets.KINDS[1:]), distinct=True),
    "reinit_draws": Int(lo=1),
    "seed": Int(0, 2**32 - 1),
    "stability.points": Int(2, 1001),  # each point is a network evaluated per trial
    "stability.twins": Int(1, 64),
    "scratch.lr_scale": Float(lo=0.0, lo_open=True),
    "scratch.steps_scale": Float(1.0, 100.0),
    "execution.mesh": Mesh(),
    "execution.cpu_devices": Int(lo=1, also=(-1,)),
    "execution.ticket_batch": Int(lo=-1),
    "execution.unroll": Choice((-1, 0, 1)),
    "execution.compilation_cache": Bool(),
    "execution.compilation_cache_dir": Str(),
    "execution.intervals_per_call": Int(lo=1),
    "execution.checkpoint_every": Int(lo=0),
    "execution.checkpoint_minutes": Float(lo=0.0),
}


# ---------------------------------------------------------------- rules that relate fields
_DEFAULT_DENSITIES = tuple(base.get_config().prune.densities)


def _cross(c: dict[str, Any]) -> Iterable[tuple[str, str]]:
  """(field, problem) for each broken rule between fields; `c` maps dotted names to values."""
  steps = c["train.steps"]
  if c["train.eval_every"] > steps:
    yield "train.eval_every", f"({c['train.eval_every']}) is larger than the run (train.steps={steps})"
  if c["train.warmup_steps"] > steps:
    yield "train.warmup_steps", f"({c['train.warmup_steps']}) is longer than the run (train.steps={steps})"
  milestones = [m for m in c["train.milestones"] if m]  # (0,) is the "none" sentinel
  if any(b <= a for a, b in zip(milestones, milestones[1:])):
    yield "train.milestones", f"must be strictly increasing, got {tuple(c['train.milestones'])}"
  if milestones and milestones[-1] >= steps:
    yield "train.milestones", f"{milestones[-1]} is not inside the run (train.steps={steps})"
  k = c["prune.rewind_step"]
  if k >= steps:
    yield "prune.rewind_step", f"({k}) is beyond the training length (train.steps={steps})"
  elif k % c["train.eval_every"]:
    yield "prune.rewind_step", f"({k}) must be a multiple of train.eval_every ({c['train.eval_every']})"
  mode, found_by = c["prune.mode"], modes.get(c["prune.mode"])
  if found_by.pruned_rounds is modes.by_densities:
    densities = list(c["prune.densities"])
    twice = sorted(d for d in set(densities) if densities.count(d) > 1)
    if not densities:
      yield "prune.densities", f"prune.mode={mode!r} needs at least one density"
    elif twice:  # each density is a round: a repeat is the same round again
      yield "prune.densities", f"{twice[0]:g} is given twice (each density is one round)"
  elif mode == "iterative" and tuple(c["prune.densities"]) != _DEFAULT_DENSITIES:  # else silently unused
    yield "prune.densities", ("prune.mode='iterative' prunes prune.rounds times at the role rates "
                              "(prune.fc_rate, prune.conv_rate, prune.output_rate) and reads no densities; "
                              "set prune.rounds, or a mode that prunes to densities (e.g. 'oneshot')")
  if tickets.INVERTED in c["controls"] and not found_by.inverts:
    inverting = ", ".join(repr(n) for n in modes.names() if modes.get(n).inverts)
    yield "controls", (f"the {tickets.INVERTED!r} control inverts a one-shot criterion's scores; "
                       f"prune.mode={mode!r} has none (use {inverting})")
  if c["prune.reset"] == "none" and not found_by.fine_tunes:
    yield "prune.reset", f"'none' (fine-tuning) continues IMP's trained ticket; prune.mode={mode!r} has none"
  elif c["prune.reset"] == "none" and k:
    yield "prune.reset", f"'none' keeps the trained weights; there is nothing to rewind to (prune.rewind_step={k})"
  for twin, partner in ((tickets.TWIN_REINIT, tickets.REINIT), (tickets.TWIN_RANDOM_MASK, tickets.RANDOM_MASK)):
    if twin in c["controls"] and partner not in c["controls"]:
      yield "controls", f"the {twin!r} control is a twin of the {partner!r} control: add {partner!r}"
  budget = c["train.steps"] * c["scratch.steps_scale"]
  if tickets.SCRATCH in c["controls"] and budget != round(budget):
    yield "scratch.steps_scale", f"train.steps * scratch.steps_scale ({budget:g}) must be a whole number of steps"
  yield from _sparse_training(c, mode, found_by)
  if mode == "given" and not str(c["prune.masks_from"]).strip():
    yield "prune.masks_from", "prune.mode='given' trains the masks of another run: name its workdir"
  elif mode != "given" and c["prune.masks_from"]:
    yield "prune.masks_from", f"is read by prune.mode='given' only, not {mode!r}"
  if mode == "early_bird" and c["prune.score"] != "magnitude":
    yield "prune.score", (f"{c['prune.score']!r} does not work with prune.mode='early_bird' (it "
                          "draws magnitude masks); use 'magnitude'")


def _sparse_training(c: dict[str, Any], mode: str, found_by) -> Iterable[tuple[str, str]]:
  """The fields of gradual and dynamic sparse training against the mode and the run."""
  spreading = ", ".join(repr(n) for n in modes.names() if "distribution" in modes.get(n).defaults)
  if c["prune.distribution"] != "auto" and "distribution" not in found_by.defaults:
    yield "prune.distribution", (f"spreads the density of {spreading}; prune.mode={mode!r} prunes "
                                 "by the role rates (prune.fc_rate, prune.conv_rate, prune.output_rate)")
  kind = structure.parse(c["prune.sparsity_type"])
  by = ", ".join(repr(n) for n in modes.names() if kind.kind in modes.get(n).structures)
  if kind.kind == "n:m" and found_by.trains is not None and "n:m" not in found_by.structures:
    yield "prune.sparsity_type", (f"{kind} sparsity has one density ({kind.n}/{kind.m}); a schedule "
                                  f"that trains the masks cannot move it (prune.mode {by} walks down to it)")
  elif kind.kind != "unstructured" and kind.kind not in found_by.structures:
    yield "prune.sparsity_type", (f"{kind} sparsity is pruned by prune.mode {by}, not by {mode!r}" if by
                                  else f"no mode prunes {kind} sparsity")

  if found_by.trains is None:
    return
  steps, begin, every, end = c["train.steps"], c["prune.update_begin"], c["prune.update_every"], c["prune.update_end"]
  every = every or found_by.defaults.get("update_every", 100)  # 0: the method's own (as wiring resolves it)
  span_end = end or 3 * steps // 4  # 0: RigL's T_end, rounded down to a multiple of ΔT
  said = f"prune.update_end={end}" if end else f"3/4 of train.steps={steps} (prune.update_end=0)"
  if end > steps:
    yield "prune.update_end", f"({end}) is beyond the run (train.steps={steps})"
  elif begin >= span_end:
    yield "prune.update_begin", f"({begin}) must come before the last update ({said})"
  elif every > span_end - begin:
    yield "prune.update_every", (f"(ΔT={every}) is longer than the updates' span, steps {begin} to "
                                 f"{span_end} (prune.update_begin to {said})")


# ---------------------------------------------------------------- the checks
def flatten(cfg) -> dict[str, Any]:
  """Dotted name -> value for every leaf of a ConfigDict (model_kwargs kept whole)."""
  out = {}

  def walk(node, prefix):
    for key, value in node.items():
      name = f"{prefix}{key}"
      if hasattr(value, "items") and name not in ("model_kwargs",):
        walk(value, name + ".")
      else:
        out[name] = value
  walk(cfg, "")
  return out


def field_parent(cfg, field: str, may_add: bool = False):
  """(group, key) of a dotted config field; ConfigError if it does not exist (`may_add`: the
  key itself may be new, e.g. a model_kwargs entry)."""
  *path, last = field.split(".")
  node = cfg
  for i, key in enumerate(path + [last]):
    if not hasattr(node, "keys") or (key not in node.keys() and not (may_add and i == len(path))):
      known = ", ".join(node.keys()) if hasattr(node, "keys") else "none (not a group)"
      raise ConfigError(field, f"no such config field ({'.'.join(path[:i]) or 'the config'} has: {known})")
    if i < len(path):
      node = node[key]
  return node, last


def import_plugins(names) -> None:
  """Import the config's `imports` (modules that register a user's scores, modes or models)."""
  problem = Seq(Str(nonempty=True)).problem(names)
  if problem:
    raise ConfigError("imports", problem)
  for name in names:
    try:
      importpath.resolve(name)
    except importpath.ImportPathError as e:
      raise ConfigError("imports", str(e)) from None


def check(cfg, network=None) -> None:
  """Raise ConfigError for the first field (in SCHEMA's order) a run cannot honour. `network`
  (through the API) stands in for `model`, which then only names it."""
  c = flatten(cfg)
  if "imports" in c:
    import_plugins(c["imports"])
  for name in c:
    if name not in SCHEMA:
      raise ConfigError(name, f"unknown config field; fields: {', '.join(SCHEMA)}")
  for name, rule in SCHEMA.items():
    if name not in c:
      raise ConfigError(name, "missing from the config (start config files from ltjax.configs.base)")
    if name == "model" and network is not None:
      continue
    problem = rule.problem(c[name])
    if problem:
      raise ConfigError(name, problem)
  for name, problem in _cross(c):
    raise ConfigError(name, problem)
  if network is None:
    _check_model_kwargs(c["model"], c["model_kwargs"])
  elif len(c["model_kwargs"]):
    raise ConfigError("model_kwargs", "only for a model the config names (the network given is "
                                      "built already)")


def _check_model_kwargs(model: str, kwargs) -> None:
  if ":" in model:  # a user's factory: built (not initialized) to catch bad keyword arguments
    try:
      models.network.build(models.load_factory(model), 10, kwargs)
    except models.ModelError as e:
      field = "model_kwargs" if len(kwargs) else "model"
      raise ConfigError(field, str(e).removeprefix("model: ")) from None
    return
  try:
    models.get(model).build(10, **dict(kwargs))
  except TypeError as e:  # flax modules are dataclasses: an unknown field is a TypeError
    raise ConfigError("model_kwargs", f"not accepted by model {model!r}: {e}") from None
  except (ValueError, KeyError) as e:
    raise ConfigError("model_kwargs", f"{e}") from None


def check_data(cfg, train_size: int) -> None:
  """What only the loaded data can tell (validation_size against the split is checked by
  `data.load`, which cannot split otherwise)."""
  if cfg.train.batch_size > train_size:
    raise ConfigError("train.batch_size", f"({cfg.train.batch_size}) is larger than the training "
                                          f"set ({train_size} examples once validation_size is held out)")
