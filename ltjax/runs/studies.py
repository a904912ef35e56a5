"""Parameter studies as data: a base preset, fields held fixed, and the points to run.

A study is a grid over config fields (every combination) or a list of points given one by one
(fields that must move together, like a pruning rate and the rounds it needs). `expand` turns a
study into named lottery configs, each checked before anything runs; `experiments.sweep` runs
them one workdir per point and `experiments.report` overlays them. The paper's parameter studies
and the stability/scratch studies that followed it are the presets in `STUDIES`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from typing import Any, Mapping, Sequence

from ltjax import configs
from ltjax.runs import validation


@dataclasses.dataclass(frozen=True)
class Study:
  description: str
  preset: str = "lenet_quick"
  grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
  points: Sequence[Mapping[str, Any]] = ()
  fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# Sized for a 2-core CPU in minutes to an hour (lenet_quick: 3 trials, 2,000 steps per round);
# pass --set.train.steps=50000 --set.trials=5 for the paper's schedule.
STUDIES: dict[str, Study] = {
    "pruning_rate": Study(
        "IMP's pruning rate per round (fc; output at half), each taken to about 3-7% remaining",
        points=({"prune.fc_rate": 0.2, "prune.output_rate": 0.1, "prune.rounds": 12},
                {"prune.fc_rate": 0.4, "prune.output_rate": 0.2, "prune.rounds": 6},
                {"prune.fc_rate": 0.6, "prune.output_rate": 0.3, "prune.rounds": 4},
                {"prune.fc_rate": 0.8, "prune.output_rate": 0.4, "prune.rounds": 2})),
    "initialization": Study(
        "the initial weights' distribution: the paper's Gaussian Glorot against uniform Glorot and He",
        grid={"model_kwargs.init": ("glorot_normal", "glorot_uniform", "he_normal")},
        fixed={"prune.rounds": 8}),
    "learning_rate": Study(
        "Adam's learning rate around the paper's 1.2e-3 (the points train side by side as one program)",
        grid={"train.lr": (6e-4, 1.2e-3, 2.4e-3)}, fixed={"prune.rounds": 8}),
    "network_size": Study(
        "LeNet-300-100's width scaled (150-50 to 600-200 hidden units)",
        grid={"model_kwargs.width": (0.5, 1.0, 2.0)}, fixed={"prune.rounds": 8}),
    "normalization": Study(
        "input normalization: per-dataset mean/std against the paper-era pixels in [0, 1]",
        grid={"normalization": ("dataset", "none")},
        fixed={"prune.rounds": 13, "train.steps": 5000, "reinit_draws": 2}),  # to 5.5%
    "resetting": Study(
        "what survivors start from each round: theta_0, theta_k (rewinding), or their trained "
        "values (no reset: fine-tuning)",
        points=({"prune.reset": "start", "prune.rewind_step": 0},
                {"prune.reset": "start", "prune.rewind_step": 200},
                {"prune.reset": "none", "prune.rewind_step": 0}),
        fixed={"prune.rounds": 8, "controls": ("reinit",)}),
    "stability": Study(
        "linear mode connectivity of the dense net and of IMP tickets against the rewind step k",
        grid={"prune.rewind_step": (0, 100, 200, 500, 1000)},
        fixed={"prune.rounds": 8, "controls": ("twin",)}),
    "scratch": Study(
        "the pruned architecture trained from scratch on its own schedule (Scratch-B: twice the "
        "budget), beside the ticket and random reinit",
        grid={"scratch.lr_scale": (1.0, 2.0)},
        fixed={"prune.rounds": 8, "controls": ("reinit", "scratch"), "scratch.steps_scale": 2.0}),
}


def names() -> list[str]:
  return sorted(STUDIES)


def get(name: str) -> Study:
  if name not in STUDIES:
    raise validation.UsageError(f"unknown study {name!r}; studies: {', '.join(names())}")
  return STUDIES[name]


def combine(study: Study, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
  """The points of `study` (its own points, or its grid) crossed with an extra `grid`."""
  for field, values in grid.items():
    if not values:
      raise validation.ConfigError(field, "the sweep gives no values")
  own = _own_points(study)
  _refuse_point_fields(own, grid, "--sweep")
  return [{**a, **b} for a in own for b in _product(grid)]


def _own_points(study: Study) -> list[dict[str, Any]]:
  return [dict(p) for p in study.points] or _product(study.grid)


def _refuse_point_fields(own: Sequence[Mapping[str, Any]], given: Mapping[str, Any], how: str) -> None:
  """A field the study sets per point would silently override (or collide with) the user's value."""
  for field in given:
    values = dict.fromkeys(_short(p[field]) for p in own if field in p)
    if values:
      raise validation.UsageError(f"{how}.{field}: the study sets it per point ({', '.join(values)}); run the "
                                  "preset with --sweep instead of the study to choose its values")


def _product(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
  fields = list(grid)
  return [dict(zip(fields, values)) for values in itertools.product(*(grid[f] for f in fields))]


def point_name(point: Mapping[str, Any]) -> str:
  """A workdir name for a point: 'fc_rate=0.2,rounds=12' (full paths where the ends clash)."""
  ends = [f.split(".")[-1] for f in point]
  parts = [f"{e if ends.count(e) == 1 else f}={_short(v)}" for (f, v), e in zip(point.items(), ends)]
  return re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(parts)) or "base"


def _short(v: Any) -> str:
  if isinstance(v, (tuple, list)):
    return "+".join(_short(x) for x in v) or "none"
  return f"{v:g}" if isinstance(v, float) else str(v)


def set_field(cfg, field: str, value: Any) -> None:
  """cfg.<field> = value for a dotted field that exists (model_kwargs may gain keys)."""
  node, key = validation.field_parent(cfg, field, may_add=field.startswith("model_kwargs."))
  try:
    with node.unlocked():
      node[key] = tuple(value) if isinstance(value, list) else value
  except (TypeError, ValueError) as e:
    raise validation.ConfigError(field, f"cannot take {value!r}: {e}") from None


def expand(study: Study, base=None, fixed: Mapping[str, Any] | None = None,
           grid: Mapping[str, Sequence[Any]] | None = None) -> list[tuple[str, Any, dict[str, Any]]]:
  """(name, config, point) for every point, each config checked (ConfigError names the point).

  `base` defaults to the study's preset; `fixed` overrides apply to every point after the
  study's own fixed fields; `grid` crosses the study's points with more fields. Neither may
  name a field the study's points set (UsageError).
  """
  points = combine(study, grid or {})
  _refuse_point_fields(_own_points(study), fixed or {}, "--set")
  if not points or points == [{}]:
    raise validation.UsageError("nothing to sweep: give a study or --sweep.FIELD=V1,V2,...")
  out, seen = [], set()
  for point in points:
    cfg = configs.get(study.preset) if base is None else _copy(base)
    for field, value in {**study.fixed, **(fixed or {})}.items():
      set_field(cfg, field, value)
    name = point_name(point)
    for field, value in point.items():
      set_field(cfg, field, value)
    if "prune.mode" in point and "prune.densities" not in point and cfg.prune.mode == "iterative":
      # --set.prune.densities beside --sweep.prune.mode=iterative,oneshot is for the points that read it
      set_field(cfg, "prune.densities", (configs.get(study.preset) if base is None else base).prune.densities)
    if name in seen:
      raise validation.UsageError(f"two sweep points are both {name!r}; give each value once")
    seen.add(name)
    try:
      validation.check(cfg)
    except validation.ConfigError as e:
      raise validation.UsageError(f"point {name}: {e}") from None
    out.append((name, cfg, point))
  return out


def _copy(cfg):
  return copy.deepcopy(cfg)
