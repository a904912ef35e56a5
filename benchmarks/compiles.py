r"""What a cold run compiles: XLA programs and their seconds, for a small lottery experiment.

  python -m benchmarks.compiles                    # 2 trials, 3 rounds of 200 steps, LeNet on MNIST

Runs `experiment.train_and_evaluate` in this process with an empty, private compilation cache and
counts every XLA compilation (JAX's backend-compile events) by function name. On XLA:CPU each
program costs 0.05 s (a single eager op) to 3 s (a round's training program), so on small runs
and in the test suite the number of programs, not the arithmetic, sets the time. Needs prepared
MNIST ($LTJAX_DATA_DIR or --data_dir).
"""

from __future__ import annotations

import collections
import os
import tempfile
import time

import jax
from absl import flags

from benchmarks import common
from experiments import cli
from ltjax import configs
from ltjax.runs import experiment

_PRESET = flags.DEFINE_string("preset", "lenet_quick", "Preset to start from.")
_TRIALS = flags.DEFINE_integer("trials", 2, "Trials.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Pruning rounds after the dense one.")
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps per round.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 50, "Validation interval.")
_VALIDATION_SIZE = flags.DEFINE_integer("validation_size", 1000, "Validation examples.")
_TOP = flags.DEFINE_integer("top", 8, "Functions to list, most compile seconds first.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default $LTJAX_DATA_DIR).")
cli.check_flag("preset", lambda v: v in configs.available(),
               f"preset must be one of {', '.join(configs.available())}")
for _name in ("trials", "steps", "eval_every", "validation_size"):
  cli.check_flag(_name, lambda v: v >= 1, f"{_name} must be >= 1")
cli.check_flag("rounds", lambda v: v >= 0, "rounds must be >= 0")
cli.check_flag("top", lambda v: v >= 0, "top must be >= 0")
cli.check_flag("data_dir", lambda v: v is None or os.path.isdir(os.path.expanduser(v)),
               "data_dir must be an existing directory")

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def main(argv):
  del argv
  cfg = configs.get(_PRESET.value)
  cfg.trials, cfg.prune.rounds, cfg.validation_size = _TRIALS.value, _ROUNDS.value, _VALIDATION_SIZE.value
  cfg.train.steps, cfg.train.eval_every = _STEPS.value, _EVAL_EVERY.value
  if _DATA_DIR.value:
    cfg.data_dir = _DATA_DIR.value
  by_name: dict[str, list[float]] = collections.defaultdict(list)

  def listen(event, seconds, **kwargs):
    if event == _COMPILE_EVENT:
      by_name[str(kwargs.get("fun_name", "?"))].append(seconds)
  jax.monitoring.register_event_duration_secs_listener(listen)
  with tempfile.TemporaryDirectory() as tmp:
    cfg.execution.compilation_cache_dir = os.path.join(tmp, "cache")  # empty: every program compiles
    t0 = time.perf_counter()
    try:
      experiment.train_and_evaluate(cfg, os.path.join(tmp, "w"), log=lambda _: None)
    except experiment.UsageError as e:
      cli.fail(e)
    seconds = time.perf_counter() - t0
  top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:_TOP.value]
  common.emit({"bench": "compiles", "preset": _PRESET.value, "trials": _TRIALS.value,
               "rounds": _ROUNDS.value, "steps": _STEPS.value, "run_seconds": round(seconds, 2),
               "programs": sum(len(v) for v in by_name.values()),
               "compile_seconds": round(sum(sum(v) for v in by_name.values()), 2),
               "top": [[name, len(v), round(sum(v), 2)] for name, v in top]})


if __name__ == "__main__":
  cli.run(main)
