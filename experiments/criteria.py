r"""Every way of finding a ticket, on one footing: IMP, one-shot magnitude, SNIP, GraSP, SynFlow,
early-bird tickets, and the two baselines of Frankle et al. 2021: random pruning and magnitude
pruning at initialization (random_init, magnitude_init).

  python -m experiments.criteria --workdir=workdirs/criteria                 # LeNet/MNIST, the paper's schedule
  python -m experiments.criteria --workdir=workdirs/criteria_quick --steps=2000 --trials=2
  python -m experiments.criteria --workdir=workdirs/criteria_fashion --set.dataset=fashion_mnist

Runs one lottery experiment per criterion (each in WORKDIR/<criterion>, resumable like any
lottery run) at the same densities, with Frankle et al. 2021's controls: random reinit, the mask
shuffled within each layer, and (one-shot criteria) the inverted scores. Then writes
WORKDIR/report: the usual report overlaying all criteria (accuracy and early stop against
density) and `cost.png`, test accuracy against the model-steps spent finding each ticket (the
records' `finding_steps`: IMP every earlier round, one-shot the dense training, early-bird the
dense steps until its mask settled, at init none beyond scoring). To draw scoring too, measure it
first: `python -m benchmarks.criteria --scope=global > WORKDIR/scoring_cost.jsonl`.

`--set.FIELD=V` holds a field of the preset at V for every criterion (`--set.dataset=fashion_mnist`,
`--set.model_kwargs.width=0.5`, `--set.train.lr=2e-3`), as the sweep binary's `--set` does.
"""

import pathlib
import sys

from absl import flags

from experiments import cli
from ltjax import configs, wiring
from ltjax.engine import runtime
from ltjax.runs import comparison, experiment, studies, validation

_CHOICES = comparison.METHODS
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/criteria", "Root of the per-criterion workdirs.")
_PRESET = flags.DEFINE_string("preset", "lenet_mnist", "Lottery preset every criterion starts from.")
_CRITERIA = flags.DEFINE_list("criteria", list(_CHOICES), "Which criteria to run.")
_DENSITIES = flags.DEFINE_list("densities", ["0.512", "0.328", "0.168", "0.086", "0.036"],
                               "Fractions of weights remaining, decreasing (IMP reaches the nearest).")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps per round (0: the preset's).")
_TRIALS = flags.DEFINE_integer("trials", 0, "Trials (0: the preset's).")
_DRAWS = flags.DEFINE_integer("reinit_draws", 0, "Random reinitializations per trial (0: the preset's).")
_SCOPE = flags.DEFINE_string("scope", "auto", "Scope of the at-init criteria: auto (each method's "
                             "paper's: global for SNIP, GraSP, SynFlow), layerwise or global.")
_REPORT = flags.DEFINE_bool("report", True, "Also write WORKDIR/report, every criterion's figures "
                            "overlaid (python -m experiments.report draws it later); cost.png is always drawn.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", -1, "CPU cores as JAX devices for every criterion: -1 "
                                    "one per core (as experiments.lottery), n exactly n.")
cli.check_flag("workdir", lambda v: bool(v.strip()), "workdir must not be empty")
cli.check_flag("preset", lambda v: v in configs.available(),
               f"preset must be one of {', '.join(configs.available())}")
cli.check_flag("criteria", lambda v: v and all(c in _CHOICES for c in v) and len(set(v)) == len(v),
               f"criteria must be among {', '.join(_CHOICES)}, each once")
cli.check_flag("densities", lambda v: v and all(0 < float(d) <= 1 for d in v)
               and all(float(a) > float(b) for a, b in zip(v, v[1:])),
               "densities must be decreasing numbers in (0, 1]")
cli.check_flag("steps", lambda v: v >= 0, "steps must be >= 0")
cli.check_flag("trials", lambda v: v >= 0, "trials must be >= 0")
cli.check_flag("reinit_draws", lambda v: v >= 0, "reinit_draws must be >= 0")
cli.check_flag("cpu_devices", lambda v: v == -1 or v >= 1, "cpu_devices must be -1 or >= 1")
cli.check_flag("scope", lambda v: v in ("auto", "layerwise", "global"), "scope must be auto, layerwise or global")


_FIXED: dict = {}  # --set.FIELD=V (taken out of argv before absl sees it)
# What each criterion's config sets itself (comparison.config_for), and the flag that says it.
_OWNED = {"name": "--criteria", "controls": "--criteria", "prune.mode": "--criteria",
          "prune.score": "--criteria", "prune.densities": "--densities", "prune.rounds": "--densities"}


def preset_config():
  """The preset with --steps, --trials, --reinit_draws and every --set field: what each
  criterion's config starts from."""
  cfg = configs.get(_PRESET.value)
  for holder, field in ((_STEPS, "train.steps"), (_TRIALS, "trials"), (_DRAWS, "reinit_draws")):
    if holder.value and field in _FIXED:  # the later one would silently win
      cli.fail(f"--set.{field}: {field} is given twice (also --{holder.name})")
    if holder.value:
      studies.set_field(cfg, field, holder.value)
  for field, value in _FIXED.items():
    if field in _OWNED:  # it would be overwritten, criterion by criterion
      cli.fail(f"--set.{field}: each criterion sets {field} itself (choose with {_OWNED[field]})")
    try:
      studies.set_field(cfg, field, value)
    except validation.ConfigError as e:  # its message starts with the field
      cli.fail(f"--set.{e}")
  return cfg


def _role_sizes(cfg) -> dict:
  """Prunable weights per layer role of the preset's network on its data (sets IMP's rounds)."""
  try:
    dataset = experiment.load_dataset(cfg, log=print)
    return wiring.role_sizes(cfg, dataset)
  except experiment.UsageError as e:
    cli.fail(e)


def config_for(base, name: str, densities: tuple[float, ...], sizes: dict):
  """The lottery config that finds tickets by `name` at (about) `densities`, from `base`."""
  try:
    return comparison.config_for(base, name, densities, sizes, _SCOPE.value)
  except ValueError as e:
    cli.fail(e)


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
  base = preset_config()
  try:  # the --set fields, checked before anything runs or is written
    experiment.validate(base)
  except experiment.UsageError as e:
    cli.fail(f"--set: {e}")
  sizes = _role_sizes(base) if "imp" in _CRITERIA.value else {}
  try:  # what each criterion's scoring costs, if measured into WORKDIR (see the docstring)
    scoring = comparison.scoring_costs(root / comparison.SCORING_COST)
  except ValueError as e:
    cli.fail(f"workdir: {e}")
  for name in _CRITERIA.value:
    cfg = config_for(base, name, densities, sizes)
    try:
      recs = experiment.train_and_evaluate(cfg, root / name, log=cli.StatusLine().log)
    except experiment.UsageError as e:
      cli.fail(f"{name}: {e}")
    runs.append((root / name, name))
    points += comparison.cost_points(name, recs, scoring.get(name, 0.0))
  from ltjax.reports import (
    analysis,  # noqa: PLC0415 -- matplotlib only once the runs are done
    summary,  # noqa: PLC0415 -- matplotlib only once the runs are done
  )
  loaded = [analysis.load_run(w, label) for w, label in runs] if _REPORT.value else []
  cost = summary.write_criteria_report(loaded, points, root / "report", overlaid=_REPORT.value, log=print)
  print(f"cost: {cost}")


def run():
  argv, taken = cli.take_fields(list(sys.argv), ("--set.",))
  _FIXED.update({field: cli.field_value(value) for field, value in taken["--set."].items()})
  sys.argv[:] = argv
  cli.run(main, argv=argv)


if __name__ == "__main__":
  run()
