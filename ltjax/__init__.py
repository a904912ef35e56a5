"""ltjax: lottery-ticket experiments on any flax network and data, many seeds as one program.

    import ltjax
    cfg = ltjax.config("lenet_quick", {"trials": 3, "prune.rounds": 4})
    records = ltjax.run(cfg, "/tmp/run", model=MyModule(num_classes=10), dataset=(train, test))
    ltjax.report(["/tmp/run"], "/tmp/run/report")

`run` writes a workdir exactly as the lottery binary does (records, curves, masks, TensorBoard,
checkpoints; rerun to resume). Your pruning score (`register_score`) or mask-finding mode
(`register_mode`) plugs in by name; `prune.score` and `prune.mode` then select it, with every
control and the report of a built-in one. The pieces underneath are public modules too:
`ltjax.lottery` (the algorithm), `ltjax.core` (masks, scores, pruning, tickets), `ltjax.engine`
(the compiled trainer), `ltjax.methods`, `ltjax.models`, `ltjax.data`.
"""

__version__ = "0.1.0"

import os
from typing import Any, Callable, Sequence

from ltjax import configs
from ltjax.core.scores import Context as ScoreContext
from ltjax.core.scores import Network as ScoreNetwork
from ltjax.core.scores import register as register_score
from ltjax.data import Dataset
from ltjax.lottery import RoundResult, RoundSink
from ltjax.methods.modes import Found, Request
from ltjax.methods.modes import register as register_mode
from ltjax.runs import experiment as _experiment
from ltjax.runs.studies import set_field as _set_field
from ltjax.runs.validation import UsageError

__all__ = ["Dataset", "Found", "Request", "RoundResult", "RoundSink", "ScoreContext", "ScoreNetwork",
           "UsageError", "config", "presets", "register_mode", "register_score", "report", "run"]


def presets() -> list[str]:
  """Names `config` takes: the paper's networks and schedules."""
  return configs.available()


def config(preset: str = "lenet_quick", overrides: dict[str, Any] | None = None):
  """A preset's config with dotted-field overrides, e.g. {'train.steps': 500, 'trials': 2}.
  An unknown preset or field is a UsageError; values are checked when the run starts."""
  try:
    cfg = configs.get(preset)
  except KeyError as e:
    raise UsageError(str(e).strip("'\"")) from None
  if overrides is not None and not hasattr(overrides, "items"):
    raise UsageError(f"overrides: expected a mapping of dotted field -> value, got {type(overrides).__name__}")
  for field, value in (overrides or {}).items():
    _set_field(cfg, field, value)
  return cfg


def run(config, workdir: str | os.PathLike, *, model=None, dataset=None, roles=None,
        restart: bool = False, log: Callable[[str], None] = print,
        status: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
  """Run (or resume) a lottery experiment in `workdir`; returns every record.

  Args:
    config: a ConfigDict (`ltjax.config(...)`).
    workdir: where the run writes; the same call again resumes it.
    model: your network, a `flax.linen.Module` (its `__call__` may take `train`) or an
      `(init(key, x) -> params, apply(params, x) -> logits)` pair; default `config.model`.
    dataset: your data, ((x_train, y_train), (x_test, y_test)) arrays, {'train': ..., 'test':
      ...}, or a `Dataset`; default `config.dataset`.
    roles: {'path/pattern': role} overriding the inferred roles (conv, fc, output, fixed).
    restart: discard what the workdir holds first.
    log, status: where round summaries and the progress line go.
  """
  return _experiment.run(config, workdir, network=model, dataset=dataset, roles=roles,
                         restart=restart, log=log, status=status)


def report(workdirs: Sequence[str | os.PathLike], out: str | os.PathLike,
           labels: Sequence[str] | None = None):
  """Figures and summary.md for finished runs (overlaid when several); returns the summary's path.
  Bad input is a UsageError, as it is for `run`."""
  from ltjax.reports import analysis, summary  # noqa: PLC0415 -- matplotlib only where a report is drawn
  try:
    return summary.report(workdirs, out, labels)
  except analysis.ReportError as e:
    raise UsageError(str(e)) from None
