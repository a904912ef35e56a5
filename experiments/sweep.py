r"""A grid of lottery experiments, one workdir per point, resumable as a whole, with one report.

  python -m experiments.sweep --study=pruning_rate --workdir=workdirs/pruning_rate
  python -m experiments.sweep --config=lenet_quick --workdir=workdirs/width \
      --sweep.model_kwargs.width=0.5,1,2 --sweep.prune.fc_rate=0.2,0.4 --set.trials=2
  python -m experiments.sweep --list                     # the studies (ltjax/runs/studies.py)

`--sweep.FIELD=V1,V2,...` adds a field to the grid (every combination is run; a tuple value is
written in brackets, `--sweep.controls=(reinit,),(twin,)`); `--set.FIELD=V` holds a field fixed on
every point. Points that differ only in the learning rate, the scratch control's rate or the
initializer train side by side as one program (`ltjax.runs.together`; --notogether: one by one).
Each point runs in WORKDIR/<field=value,...> like `experiments.lottery` (rerunning the
same command resumes where it stopped, finished points are not rerun), and WORKDIR/sweep.json
records the sweep; a different sweep in the same workdir is refused unless --restart. The report
(WORKDIR/report) overlays every point, one line each, with stability figures where points ran
the 'twin' control.
"""

import pathlib
import sys

from absl import flags

from experiments import cli
from ltjax.runs import experiment, studies, sweeps, together, validation

_STUDY = flags.DEFINE_string("study", "", "A study of ltjax/runs/studies.py (its preset, grid, fixed fields).")
_CONFIG = flags.DEFINE_string("config", "", "Preset or config file to sweep (default: the study's, "
                              "else lenet_quick).")
_WORKDIR = flags.DEFINE_string("workdir", "", "Root of the sweep: one workdir per point in it.")
_RESTART = flags.DEFINE_bool("restart", False, "Discard what the workdir holds and start over.")
_LIST = flags.DEFINE_bool("list", False, "List the studies and exit.")
_REPORT = flags.DEFINE_bool("report", True, "Write WORKDIR/report when the points are done.")
_TOGETHER = flags.DEFINE_bool("together", True, "Train points that differ only in what the ticket "
                              "axis carries per ticket (ltjax.runs.together.COMBINABLE) side by side "
                              "as one program; --notogether runs every point on its own.")
cli.check_flag("study", lambda v: not v or v in studies.names(),
               f"study must be one of {', '.join(studies.names())}")

_GRID: dict = {}    # --sweep.FIELD=V1,V2 (taken out of argv before absl sees it)
_FIXED: dict = {}   # --set.FIELD=V


def split_values(text: str) -> list:
  """'0.2,0.4' -> [0.2, 0.4]; commas inside brackets stay: '(a,b),(c,)' -> [('a','b'), ('c',)]."""
  parts, depth, cur = [], 0, ""
  for ch in text:
    if ch in "([":
      depth += 1
    elif ch in ")]":
      depth -= 1
    if ch == "," and depth == 0:
      parts.append(cur)
      cur = ""
    else:
      cur += ch
  parts.append(cur)
  return [cli.field_value(p.strip()) for p in parts if p.strip()]


def _take_sweep_args(argv: list[str]) -> list[str]:
  out, taken = cli.take_fields(argv, ("--sweep.", "--set."))
  for field, value in taken["--sweep."].items():
    _GRID[field] = split_values(value)
    if not _GRID[field]:
      cli.fail(f"--sweep.{field}: empty sweep (give values: --sweep.{field}=V1,V2)")
  _FIXED.update({field: cli.field_value(value) for field, value in taken["--set."].items()})
  return out


def main(argv):
  del argv
  if _LIST.value:
    for name in studies.names():
      s = studies.get(name)
      size = len(studies.combine(s, {}))
      print(f"{name:15s} {size} points on {s.preset}: {s.description}")
    return
  study = studies.get(_STUDY.value) if _STUDY.value else studies.Study("a sweep")
  base = None
  if _CONFIG.value:
    base = cli.load_config(cli.config_source(_CONFIG.value))
  if not _WORKDIR.value.strip():
    cli.fail("--workdir: give the sweep's root directory")
  try:
    points = studies.expand(study, base, _FIXED, _GRID)
  except validation.UsageError as e:
    cli.fail(e)
  root = pathlib.Path(_WORKDIR.value)
  try:
    sweeps.claim(root, sweeps.manifest(_STUDY.value, _CONFIG.value or study.preset, _FIXED, points),
                 restart=_RESTART.value)
  except sweeps.SweepError as e:
    cli.fail(f"--workdir: {e}; use another workdir or --restart")
  except OSError as e:
    cli.fail(f"--workdir: cannot write {root}: {e.strerror or e}")
  status = cli.StatusLine()
  named = [(name, cfg) for name, cfg, _ in points]
  for group in together.groups(named) if _TOGETHER.value else [[p] for p in named]:
    names = ", ".join(name for name, _ in group)
    status.log(f"point{'s' if len(group) > 1 else ''} {names}")
    try:
      if len(group) > 1:
        together.train_together(group, root, restart=_RESTART.value, log=status.log, status=status)
      else:
        [(name, cfg)] = group
        experiment.train_and_evaluate(cfg, root / name, restart=_RESTART.value, log=status.log,
                                      status=status)
    except experiment.UsageError as e:
      cli.fail(f"point{'s' if len(group) > 1 else ''} {names}: {e}")
  if _REPORT.value:
    from ltjax.reports import summary  # noqa: PLC0415 -- matplotlib once the runs are done
    done = sweeps.finished(root)
    path = summary.report([w for _, w in done], root / "report", [name for name, _ in done],
                          log=print)
    print(f"report: {path}")


def run():
  argv = _take_sweep_args(list(sys.argv))
  sys.argv[:] = argv
  cli.run(main, argv=argv)


if __name__ == "__main__":
  run()
