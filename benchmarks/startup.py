r"""Time to the first training step, from a cold and from a warm compilation cache.

  python -m benchmarks.startup                       # LeNet-300-100 on MNIST, 3 tickets

Runs the lottery binary twice in fresh processes with an empty, private compilation cache and
reports, per run, the seconds from process start to its first progress line (one eval interval
of 100 steps trained and validated, so the first compiled call is done). The second run loads its
programs from the cache the first one wrote. Needs prepared MNIST ($LTJAX_DATA_DIR).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import common
from experiments import cli
from ltjax import configs

_PRESET = flags.DEFINE_string("preset", "lenet_quick", "Preset to start.")
cli.check_flag("preset", lambda v: v in configs.available(),
               f"preset must be one of {', '.join(configs.available())}")


def first_step_seconds(workdir: str, cache: str) -> float:
  env = {**os.environ, "LTJAX_CACHE_DIR": cache}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  t0 = time.perf_counter()
  proc = subprocess.Popen(
      [sys.executable, "-m", "experiments.lottery", f"--config={_PRESET.value}",
       f"--workdir={workdir}", "--config.prune.rounds=0", "--config.train.steps=200",
       "--config.train.eval_every=100", "--config.execution.intervals_per_call=1"],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  seconds = None
  for line in proc.stdout:
    if seconds is None and " step 100/" in line:
      seconds = time.perf_counter() - t0
  if proc.wait() != 0 or seconds is None:
    cli.fail(f"the lottery binary failed (status {proc.returncode}); run it alone to see why")
  return seconds


def main(argv):
  del argv
  try:
    configs.get(_PRESET.value)
  except KeyError as e:
    cli.fail(e.args[0])
  with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, "cache")
    cold = first_step_seconds(os.path.join(tmp, "cold"), cache)
    warm = first_step_seconds(os.path.join(tmp, "warm"), cache)
  common.emit({"bench": "startup", "preset": _PRESET.value, "cold_first_step_seconds": cold,
               "warm_first_step_seconds": warm})


if __name__ == "__main__":
  cli.run(main)
