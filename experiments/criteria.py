r"""Every way of finding a ticket, on one footing: IMP, one-shot magnitude, SNIP, GraSP, SynFlow
and early-bird tickets.

  python -m experiments.criteria --workdir=workdirs/criteria                 # LeNet/MNIST, the paper's schedule
  python -m experiments.criteria --workdir=workdirs/criteria_quick --steps=2000 --trials=2

Runs one lottery experiment per criterion (each in WORKDIR/<criterion>, resumable like any
lottery run) at the same densities, with Frankle et al. 2021's controls: random reinit, the mask
shuffled within each layer, and (one-shot criteria) the inverted scores. Then writes
WORKDIR/report: the usual report overlaying all criteria (accuracy and early stop against
density) and `cost.png`, test accuracy against the model-steps spent finding each ticket (the
records' `finding_steps`: IMP every earlier round, one-shot the dense training, early-bird the
dense steps until its mask settled, at init none beyond scoring).
"""

import pathlib

import jax
import numpy as np
from absl import flags

from experiments import cli
from ltjax import configs, lottery, models
from ltjax.core import masks, roles
from ltjax.engine import runtime
from ltjax.run import experiment

_CHOICES = ("imp", "oneshot", "snip", "grasp", "synflow", "early_bird")
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/criteria", "Root of the per-criterion workdirs.")
_PRESET = flags.DEFINE_string("preset", "lenet_mnist", "Lottery preset every criterion starts from.")
_CRITERIA = flags.DEFINE_list("criteria", list(_CHOICES), "Which criteria to run.")
_DENSITIES = flags.DEFINE_list("densities", ["0.512", "0.328", "0.168", "0.086", "0.036"],
                               "Fractions of weights remaining, decreasing (IMP reaches the nearest).")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps per round (0: the preset's).")
_TRIALS = flags.DEFINE_integer("trials", 0, "Trials (0: the preset's).")
_DRAWS = flags.DEFINE_integer("reinit_draws", 0, "Random reinitializations per trial (0: the preset's).")
_SCOPE = flags.DEFINE_string("scope", "layerwise", "Scope of the at-init criteria: layerwise or global.")
_REPORT = flags.DEFINE_bool("report", True, "Also write WORKDIR/report, every criterion's figures "
                            "overlaid (python -m experiments.report draws it later); cost.png is always drawn.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", -1, "CPU cores as JAX devices for every criterion: -1 "
                                    "one per core (as experiments.lottery), n exactly n.")
cli.check_flag("workdir", lambda v: bool(v.strip()), "workdir must not be empty")
cli.check_flag("preset", lambda v: v in configs.available(),
               f"preset must be one of {', '.join(configs.available())}")
cli.check_flag("criteria", lambda v: v and all(c in _CHOICES for c in v),
               f"criteria must be among {', '.join(_CHOICES)}")
cli.check_flag("densities", lambda v: v and all(0 < float(d) <= 1 for d in v)
               and all(float(a) > float(b) for a, b in zip(v, v[1:])),
               "densities must be decreasing numbers in (0, 1]")
cli.check_flag("steps", lambda v: v >= 0, "steps must be >= 0")
cli.check_flag("trials", lambda v: v >= 0, "trials must be >= 0")
cli.check_flag("reinit_draws", lambda v: v >= 0, "reinit_draws must be >= 0")
cli.check_flag("cpu_devices", lambda v: v == -1 or v >= 1, "cpu_devices must be -1 or >= 1")
cli.check_flag("scope", lambda v: v in ("layerwise", "global"), "scope must be layerwise or global")


def config_for(name: str, densities: tuple[float, ...]):
  """The lottery config that finds tickets by `name` at (about) `densities`."""
  cfg = configs.get(_PRESET.value)
  cfg.name = f"{cfg.name}_{name}"
  if _STEPS.value:
    cfg.train.steps = _STEPS.value
  if _TRIALS.value:
    cfg.trials = _TRIALS.value
  if _DRAWS.value:
    cfg.reinit_draws = _DRAWS.value
  cfg.controls = ("reinit", "random_mask") + (("inverted",) if name not in ("imp", "early_bird") else ())
  if name == "imp":
    cfg.prune.mode = "iterative"
    try:
      cfg.prune.rounds = imp_rounds(cfg, densities[-1])
    except experiment.UsageError as e:
      cli.fail(e)
  else:
    cfg.prune.mode = name if name in ("oneshot", "early_bird") else "at_init"
    cfg.prune.densities = densities
    cfg.prune.score = name if cfg.prune.mode == "at_init" else "magnitude"
    if cfg.prune.mode == "at_init":
      cfg.prune.scope = _SCOPE.value
  return cfg


def imp_rounds(cfg, density: float) -> int:
  """Rounds of IMP until the remaining fraction is within 2% of `density`."""
  spec = models.get(cfg.model)
  dataset = experiment.load_dataset(cfg, log=print)
  init = lottery.make_init(spec.build(dataset.num_classes, **dict(cfg.model_kwargs)), dataset.input_shape)
  params = jax.eval_shape(init, jax.random.key(0))[0]
  sizes = masks.sizes_by_kind(params, spec.layer_kinds(params))
  rates = {roles.CONV: cfg.prune.conv_rate, roles.FC: cfg.prune.fc_rate, roles.OUTPUT: cfg.prune.output_rate}
  total = sum(sizes.values())
  for rounds in range(1, 61):
    if sum(n * (1 - rates[k]) ** rounds for k, n in sizes.items()) / total <= density * 1.02:
      return rounds
  cli.fail(f"densities: {density} takes more than 60 rounds of IMP at these rates")


def cost_points(name: str, recs: list[dict]) -> list[dict]:
  """(density, model-steps spent finding the ticket per trial, test accuracies) of each round."""
  out = []
  for r in sorted({x["round"] for x in recs if x["round"] > 0}):
    tickets = [x for x in recs if x["round"] == r and x["kind"] == "ticket" and not x["diverged"]]
    if not tickets:
      continue
    out.append({"criterion": name, "round": r, "density": tickets[0]["density"],
                "finding_model_steps": float(np.mean([x["finding_steps"] for x in tickets])),
                "test_accuracy": [x["test_accuracy"] for x in tickets]})
  return out


def main(argv):
  del argv
  # Before anything starts JAX (imp_rounds does): every criterion then runs on the same devices.
  # Until 2026-11-28 a run that began with IMP started JAX on one device and one that did not
  # used one per core; `--cpu_devices=1` reproduces the former.
  try:
    runtime.use_cpu_devices(_CPU_DEVICES.value)
  except runtime.LayoutError as e:
    cli.fail(f"cpu_devices: {e}")
  root = pathlib.Path(_WORKDIR.value)
  densities = tuple(float(d) for d in _DENSITIES.value)
  runs = []
  points = []
  for name in _CRITERIA.value:
    cfg = config_for(name, densities)
    try:
      recs = experiment.train_and_evaluate(cfg, root / name, log=cli.StatusLine().log)
    except experiment.UsageError as e:
      cli.fail(f"{name}: {e}")
    runs.append((root / name, name))
    points += cost_points(name, recs)
  from ltjax.report import (
    analysis,  # noqa: PLC0415 -- matplotlib only once the runs are done
    figures,  # noqa: PLC0415 -- matplotlib only once the runs are done
  )
  loaded = [analysis.load_run(w, label) for w, label in runs] if _REPORT.value else []
  cost = figures.write_criteria_report(loaded, points, root / "report", overlaid=_REPORT.value, log=print)
  print(f"cost: {cost}")


if __name__ == "__main__":
  cli.run(main)
