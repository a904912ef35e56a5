r"""Figures and a summary of finished (or running) lottery workdirs; reads results, never trains.

  python -m experiments.report --workdir=workdirs/lenet_quick     # -> workdirs/lenet_quick/report
  python -m experiments.report --workdir=runs/a --workdir=runs/b --label=iterative --label=oneshot \
      --out=workdirs/compare                                       # overlay two runs
  python -m experiments.report --sweep=workdirs/study_stability    # every point of a sweep
  python -m experiments.report --records=results/criteria_5k       # redraw committed record sets
  python -m experiments.report --results=results                   # -> results/STATS.md, and
                                                                   #    RESULTS.md's numbers

Writes PNG figures and summary.md (per-round table, config, figures) into --out.
"""

import os
import pathlib

from absl import flags

from experiments import cli
from ltjax import files
from ltjax.reports import analysis
from ltjax.runs import results, sweeps

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "Workdir(s) written by experiments.lottery; "
                                      "several are overlaid in the density figures.")
_OUT = flags.DEFINE_string("out", None, "Where the report goes (default: <first workdir>/report).")
_LABELS = flags.DEFINE_multi_string("label", None, "A legend label per workdir (default: the "
                                    "workdir's name).")
_SWEEP = flags.DEFINE_string("sweep", None, "A sweep's root (experiments.sweep): overlay all its "
                             "points, labelled by their values (default out: <sweep>/report).")
_RESULTS = flags.DEFINE_string("results", None, "A directory of committed records (results/): write "
                               "its STATS.md, every comparison with a 95% interval over trials.")
_RECORDS = flags.DEFINE_string(
    "records", None, "A directory of committed record sets (a NAME.results.jsonl per study point "
    "or criterion, as results/study_scratch or results/criteria_5k): redraw their accuracy and "
    "early-stop figures (into --out, default in place), and for a criteria comparison its cost "
    "figure, with the at-init criteria's scoring cost from scoring_cost.jsonl "
    "(python -m benchmarks.criteria) if there is one.")
_DOCUMENTS = flags.DEFINE_multi_string(
    "document", None, "With --results: markdown files whose marked numbers and tables "
    "(ltjax.reports.claims) are recomputed from the records (default: RESULTS.md beside the "
    "results directory, if there is one).")
cli.check_flag("results", lambda v: v is None or os.path.isdir(v), "results must be an existing directory")
cli.check_flag("records", lambda v: v is None or os.path.isdir(v), "records must be an existing directory")
cli.check_flag("sweep", lambda v: v is None or os.path.isfile(os.path.join(v, sweeps.MANIFEST)),
               f"sweep must be a directory written by experiments.sweep (with {sweeps.MANIFEST})")
cli.check_flag("out", lambda v: v is None or (v.strip() and (os.path.isdir(v) or not os.path.exists(v))),
               "out must be a directory path (not empty, not an existing file or device)")
cli.check_flag("workdir", lambda v: v is None or all(w.strip() for w in v), "workdir must not be empty")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if _RESULTS.value:
    from ltjax.reports import tables  # noqa: PLC0415
    out = pathlib.Path(_RESULTS.value) / tables.OUT
    try:
      text = tables.generate(_RESULTS.value)
    except results.RecordsError as e:
      cli.fail(f"results: {e}")
    if "## " not in text:
      cli.fail(f"results: no records under {_RESULTS.value}")
    rendered = _render_documents(pathlib.Path(_RESULTS.value))  # all computed before anything is written
    files.write_atomic(out, text)
    print(f"stats: {out}")
    for doc, numbers in rendered.items():
      files.write_atomic(doc, numbers)
      print(f"numbers: {doc}")
    return
  if _RECORDS.value:
    _redraw(pathlib.Path(_RECORDS.value), pathlib.Path(_OUT.value or _RECORDS.value))
    return
  workdirs, labels = _WORKDIRS.value or [], _LABELS.value or []
  if _SWEEP.value:
    try:
      done = sweeps.finished(_SWEEP.value)
    except sweeps.SweepError as e:
      cli.fail(f"sweep: {e}")
    if not done:
      cli.fail(f"sweep: no point of {_SWEEP.value} has results yet")
    workdirs += [str(w) for _, w in done]
    labels += [name for name, _ in done] if labels or not _WORKDIRS.value else []
  if not workdirs:
    cli.fail("--workdir or --sweep is required")
  if labels and len(labels) != len(workdirs):
    cli.fail(f"got {len(labels)} --label for {len(workdirs)} --workdir; "
             "give one per workdir")
  try:
    runs = [analysis.load_run(w, labels[i] if labels else None) for i, w in enumerate(workdirs)]
  except analysis.ReportError as e:
    cli.fail(e)
  default = pathlib.Path(_SWEEP.value) if _SWEEP.value and not _WORKDIRS.value else pathlib.Path(workdirs[0])
  out = pathlib.Path(_OUT.value) if _OUT.value else default / "report"
  from ltjax.reports import summary  # noqa: PLC0415 -- matplotlib only once the input is known to be good
  try:
    path = summary.write_report(runs, out, log=print)
  except OSError as e:
    cli.fail(f"out: cannot write the report to {out}: {e.strerror or e}")
  print(f"report: {path}")


def _redraw(root: pathlib.Path, out: pathlib.Path) -> None:
  from ltjax.runs import comparison  # noqa: PLC0415
  try:
    named, points = comparison.load_committed(root)
  except (ValueError, KeyError, OSError) as e:
    cli.fail(f"records: {e}")
  if not all(name in comparison.METHODS for name, _ in named):
    points = None  # a study's points, not a comparison of ways to find tickets: no cost figure
  configs = _point_configs(root)
  from ltjax.reports import summary  # noqa: PLC0415 -- matplotlib only once the input is known to be good
  runs = []
  for name, recs in named:
    config, machines = _saved_config(root, name)
    runs.append(analysis.Run(root, name, config or configs.get(name, {}), recs, machines=machines))
  try:
    for path in summary.write_comparison_figures(runs, points, out):
      print(f"wrote: {path}")
  except OSError as e:
    cli.fail(f"out: cannot write to {out}: {e.strerror or e}")


def _saved_config(root: pathlib.Path, name: str) -> tuple[dict, tuple[str, ...]]:
  """NAME.config.json's whole config and machines where the record set has one (reviewer_runs.sh
  --publish copies it), else ({}, ()) (the older committed sets: their sweep.json's point values only)."""
  path = root / f"{name}.config.json"
  if not path.is_file():
    return {}, ()
  try:
    config, machines = analysis.read_config(path)
  except analysis.ReportError as e:
    cli.fail(f"records: {e}")
  except OSError as e:
    cli.fail(f"records: cannot read {path}: {e.strerror or e}")
  if not config:  # read_config refuses a config that is not a mapping
    cli.fail(f"records: {path} is not a run's config.json (no config mapping)")
  print(f"config: {path}")  # where the figures' names of its controls come from
  return config, machines


def _point_configs(root: pathlib.Path) -> dict[str, dict]:
  """A committed sweep's points (sweep.json) as configs of their own fields: name -> nested dict."""
  if not (root / sweeps.MANIFEST).is_file():
    return {}
  try:
    points = sweeps.read(root)["points"]
  except sweeps.SweepError as e:
    cli.fail(f"records: {e}")
  configs = {}
  for point in points:
    config: dict = {}
    values = point.get("values")
    for field, value in (values.items() if isinstance(values, dict) else ()):
      *path, last = field.split(".")
      node = config
      for key in path:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
          cli.fail(f"records: {root / sweeps.MANIFEST}: point {point['name']} sets {key} and a field inside it")
      node[last] = value
    rewind = config.get("prune", {}).get("rewind_step", 0)  # what the stability figures read
    if isinstance(rewind, bool) or not isinstance(rewind, int) or rewind < 0:
      cli.fail(f"records: {root / sweeps.MANIFEST}: point {point['name']}'s prune.rewind_step must be a "
               f"step >= 0, got {rewind!r}")
    configs[point["name"]] = config
  return configs


def _render_documents(root: pathlib.Path) -> dict[str, str]:
  """Each document's text with its marked numbers recomputed (one-line failure: nothing written)."""
  from ltjax.reports import claims  # noqa: PLC0415
  beside = root.resolve().parent / "RESULTS.md"
  documents = _DOCUMENTS.value or ([str(beside)] if beside.is_file() else [])
  rendered = {}
  for doc in documents:
    try:
      rendered[doc] = claims.render(pathlib.Path(doc).read_text(), root)
    except OSError as e:
      cli.fail(f"document: cannot read {doc}: {e.strerror or e}")
    except claims.ClaimError as e:
      cli.fail(f"document {doc}: {e}")
  return rendered


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
