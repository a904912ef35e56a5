r"""Whole processes, both sides: ltjax's lottery binary against the hand-written flax + optax loop.

  python -m benchmarks.one_ticket --steps=5000 --repeats=3
  python -m benchmarks.one_ticket --tickets=15 --steps=5000 --repeats=3   # (= benchmarks.many_tickets)

Runs, alternately in fresh processes, `benchmarks.handwritten` (its `--tickets` networks one after
another, each under a fixed mask) and `experiments.lottery` on the same job (LeNet-300-100 on MNIST,
`--tickets` masked tickets in one round, `--steps` steps, validation every 100, test at the best
validation step), and reports the median wall time of each from process start to exit — imports,
data, compilation, training, evaluation, and for ltjax its checkpoints and result files included.
ltjax runs twice per repeat: with an empty compilation cache (what the first run costs) and with
the cache the cold run wrote (every later run); the median of each phase of its waterfall (the
lottery binary prints where its time went) comes with it. Ratios above 1 mean ltjax is slower.
The hand-written loop decodes MNIST's PNGs in every process (its `load_seconds`, reported); ltjax
decodes them once and keeps the arrays beside the prepared data, which is part of what is compared.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import common
from experiments import cli

_STEPS = flags.DEFINE_integer("steps", 5000, "Training steps of each ticket.")
_TICKETS = flags.DEFINE_integer("tickets", 1, "Tickets: ltjax trains them in one program, the loop one after another.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repeats (median reported).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default $LTJAX_DATA_DIR).")
cli.check_flag("steps", lambda v: v >= 100, "steps must be >= 100 (validation runs every 100)")
cli.check_flag("repeats", lambda v: v >= 1, "repeats must be >= 1")
cli.check_flag("tickets", lambda v: 1 <= v <= 1000, "tickets must be in [1, 1000]")
cli.check_flag("data_dir", lambda v: v is None or os.path.isdir(os.path.join(os.path.expanduser(v), "mnist")),
               "data_dir must hold prepared mnist")


def _timed(args, env) -> tuple[float, str]:
  t0 = time.perf_counter()
  proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
  seconds = time.perf_counter() - t0
  if proc.returncode != 0:
    cli.fail(f"{args[1]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
  return seconds, proc.stdout


_PHASE = re.compile(r"^\s+(.+?)\s+([\d.]+) s\s+[\d.]+%\s+\|")


def waterfall(stdout: str) -> dict[str, float]:
  """The phases of the lottery binary's waterfall (`ltjax.engine.timing`), in seconds."""
  lines = stdout.splitlines()
  starts = [i for i, line in enumerate(lines) if line.startswith("where the time went:")]
  out = {}
  for line in lines[starts[-1] + 1:] if starts else ():
    m = _PHASE.match(line)
    if not m:
      break
    out[m.group(1)] = float(m.group(2))
  return out


def main(argv):
  del argv
  data_dir = _DATA_DIR.value or os.environ.get("LTJAX_DATA_DIR")
  if not data_dir:
    cli.fail("no prepared data: pass --data_dir or set LTJAX_DATA_DIR")
  env = {**os.environ, "LTJAX_DATA_DIR": data_dir}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  steps, k = f"--steps={_STEPS.value}", _TICKETS.value
  plain, loads, cold, warm, accuracy = [], [], [], [], {}
  phases = {"cold": [], "warm": []}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(_REPEATS.value):
      seconds, out = _timed(["-m", "benchmarks.handwritten", steps, f"--seeds={k}", f"--data_dir={data_dir}"], env)
      plain.append(seconds)
      record = json.loads(out.strip().splitlines()[-1])
      accuracy["handwritten"] = [x["test_accuracy_at_best_val"] for x in record["runs"]]
      loads.append(record["load_seconds"])
      cache = os.path.join(tmp, f"cache{r}")
      for name, runs in (("cold", cold), ("warm", warm)):
        workdir = os.path.join(tmp, f"work{r}_{name}")
        seconds, out = _timed(["-m", "experiments.lottery", "--config=lenet_mnist", f"--workdir={workdir}",
                               f"--config.trials={k}", "--config.prune.rounds=0",
                               f"--config.train.steps={_STEPS.value}"], {**env, "LTJAX_CACHE_DIR": cache})
        runs.append(seconds)
        phases[name].append(waterfall(out))
      with open(os.path.join(workdir, "results.jsonl")) as f:
        accuracy["ltjax"] = [json.loads(line)["test_accuracy"] for line in f]
  med = statistics.median
  median_phases = {name: {p: med(w.get(p, 0.0) for w in ws) for p in ws[0]} for name, ws in phases.items()}
  common.emit({"bench": "one_ticket" if k == 1 else "many_tickets", "tickets": k, "steps": _STEPS.value,
               "repeats": _REPEATS.value,
               "handwritten_seconds": med(plain), "handwritten_load_seconds": med(loads),
               "ltjax_cold_seconds": med(cold),
               "ltjax_warm_seconds": med(warm), "ratio_cold": med(cold) / med(plain),
               "ratio_warm": med(warm) / med(plain),
               "speedup_cold": med(plain) / med(cold), "speedup_warm": med(plain) / med(warm),
               "ltjax_waterfall": median_phases, "all_seconds": {
                   "handwritten": plain, "ltjax_cold": cold, "ltjax_warm": warm},
               "test_accuracy": accuracy, **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
