r"""One ticket, whole process: ltjax's lottery binary against the hand-written flax + optax loop.

  python -m benchmarks.one_ticket --steps=5000 --repeats=3

Runs, alternately in fresh processes, `benchmarks.handwritten` and `experiments.lottery` on the
same job (LeNet-300-100 on MNIST, one dense ticket, `--steps` steps, validation every 100, test at
the end), and reports the median wall time of each from process start to exit — imports, data,
compilation, training, evaluation, and for ltjax its checkpoints and result files included.
ltjax runs twice per repeat: with an empty compilation cache (what the first run costs) and with
the cache the cold run wrote (every later run). Ratios above 1 mean ltjax is slower. The
hand-written loop decodes MNIST's PNGs in every process (its `load_seconds`, reported); ltjax decodes
them once and keeps the arrays beside the prepared data, which is part of what is compared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import common
from experiments import cli

_STEPS = flags.DEFINE_integer("steps", 5000, "Training steps of the one ticket.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repeats (median reported).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default $LTJAX_DATA_DIR).")
cli.check_flag("steps", lambda v: v >= 100, "steps must be >= 100 (validation runs every 100)")
cli.check_flag("repeats", lambda v: v >= 1, "repeats must be >= 1")
cli.check_flag("data_dir", lambda v: v is None or os.path.isdir(os.path.join(os.path.expanduser(v), "mnist")),
               "data_dir must hold prepared mnist")


def _timed(args, env) -> tuple[float, str]:
  t0 = time.perf_counter()
  proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
  seconds = time.perf_counter() - t0
  if proc.returncode != 0:
    cli.fail(f"{args[1]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
  return seconds, proc.stdout


def main(argv):
  del argv
  data_dir = _DATA_DIR.value or os.environ.get("LTJAX_DATA_DIR")
  if not data_dir:
    cli.fail("no prepared data: pass --data_dir or set LTJAX_DATA_DIR")
  env = {**os.environ, "LTJAX_DATA_DIR": data_dir}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  steps = f"--steps={_STEPS.value}"
  plain, loads, cold, warm, accuracy = [], [], [], [], {}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(_REPEATS.value):
      seconds, out = _timed(["-m", "benchmarks.handwritten", steps, f"--data_dir={data_dir}"], env)
      plain.append(seconds)
      record = json.loads(out.strip().splitlines()[-1])
      accuracy["handwritten"] = record["test_accuracy_at_best_val"]
      loads.append(record["load_seconds"])
      cache = os.path.join(tmp, f"cache{r}")
      for runs in (cold, warm):
        workdir = os.path.join(tmp, f"work{r}_{len(runs)}")
        runs.append(_timed(["-m", "experiments.lottery", "--config=lenet_mnist", f"--workdir={workdir}",
                            "--config.trials=1", "--config.prune.rounds=0",
                            f"--config.train.steps={_STEPS.value}"],
                           {**env, "LTJAX_CACHE_DIR": cache})[0])
      with open(os.path.join(workdir, "results.jsonl")) as f:
        accuracy["ltjax"] = json.loads(f.readline())["test_accuracy"]
  med = statistics.median
  common.emit({"bench": "one_ticket", "steps": _STEPS.value, "repeats": _REPEATS.value,
               "handwritten_seconds": med(plain), "handwritten_load_seconds": med(loads),
               "ltjax_cold_seconds": med(cold),
               "ltjax_warm_seconds": med(warm), "ratio_cold": med(cold) / med(plain),
               "ratio_warm": med(warm) / med(plain), "all_seconds": {
                   "handwritten": plain, "ltjax_cold": cold, "ltjax_warm": warm},
               "test_accuracy": accuracy, **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
