r"""The lottery-ticket experiment: iterative or one-shot pruning with controls, many seeds at once.

  python -m experiments.lottery                                  # quick LeNet/MNIST run
  python -m experiments.lottery --config=lenet_mnist --workdir=/tmp/lenet   # the paper's schedule
  python -m experiments.lottery --config=lenet_quick --config.train.steps=500 --config.trials=2
  python -m experiments.lottery --coordinator_address=host0:1234 --num_processes=2 --process_id=0

`--config` takes a preset name (see ltjax/configs) or a config file path; every field can be
overridden as --config.FIELD=VALUE. Rerunning the same command resumes an interrupted run.
"""

import os
import pathlib
import sys
import time

import jax
from absl import app, flags
from ml_collections import config_flags

import ltjax.configs
from experiments import cli
from ltjax import data, experiment, parallel, runtime

_PRESET_DIR = pathlib.Path(ltjax.configs.__file__).parent


def _preset_path(argv):
  """Let --config name a preset: rewrite `--config=NAME` to the preset's file before parsing."""
  out = []
  for arg in argv:
    if arg.startswith("--config="):
      value = arg.split("=", 1)[1]
      base = value.split(":", 1)[0]
      if not base.endswith(".py") and not os.path.exists(base):
        if base not in ltjax.configs.available():
          cli.fail(f"unknown preset {base!r}; presets: {', '.join(ltjax.configs.available())}"
                   " (or pass a config file path)")
        arg = f"--config={_PRESET_DIR / base}.py"
    out.append(arg)
  return out


_CONFIG = config_flags.DEFINE_config_file("config", str(_PRESET_DIR / "lenet_quick.py"),
                                          "Preset name or config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/lenet_quick", "Where results and checkpoints go.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, f"TFDS data dir (default: ${data.DATA_DIR_ENV}, "
                                "else ~/tensorflow_datasets). Overrides --config.data_dir.")
_RESTART = flags.DEFINE_bool("restart", False, "Discard what the workdir holds and start over.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "Multi-process run: host:port of "
                                   "process 0 (with --num_processes and --process_id).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Multi-process run: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "Multi-process run: this process's index.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Join a multi-process run that JAX detects "
                               "(TPU pods, SLURM, ...).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cfg = _CONFIG.value
  if _DATA_DIR.value:
    with cfg.unlocked():
      cfg.data_dir = _DATA_DIR.value
  try:
    runtime.join_cluster(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                         _MULTIHOST.value)
    experiment.train_and_evaluate(cfg, _WORKDIR.value, restart=_RESTART.value, log=_log)
  except (experiment.UsageError, parallel.LayoutError) as e:
    cli.fail(e)
  if jax.process_index() == 0:
    print(f"results: {os.path.join(_WORKDIR.value, 'results.jsonl')}")


def _log(message: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run():
  cli.run(main, argv=_preset_path(sys.argv))


if __name__ == "__main__":
  run()
