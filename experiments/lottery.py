r"""The lottery-ticket experiment: iterative or one-shot pruning with controls, many seeds at once.

  python -m experiments.lottery                                  # quick LeNet/MNIST run
  python -m experiments.lottery --config=lenet_mnist --workdir=workdirs/lenet_mnist   # the paper's schedule
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
from absl import flags
from ml_collections import config_flags

import ltjax.configs
from experiments import cli
from ltjax import data
from ltjax.engine import parallel, runtime, timing
from ltjax.runs import experiment, validation

_PRESET_DIR = pathlib.Path(ltjax.configs.__file__).parent


def _config_args(argv):
  """Checks --config and its overrides before absl parses them, so a bad one is one line.

  `--config=NAME` becomes the preset's file; the file must load and give a config; every
  `--config.FIELD=VALUE` must name a field of it. `--config.model_kwargs.KEY=VALUE` may add keys
  (the model's builder decides what it accepts): they are taken out here and set in `main`.
  """
  out, model_kwargs, source = [], {}, str(_PRESET_DIR / "lenet_quick.py")
  for arg in _joined(argv):
    if arg.startswith("--config="):
      value = arg.split("=", 1)[1]
      base, colon, config_arg = value.partition(":")
      value = cli.config_source(base) + colon + config_arg
      arg, source = f"--config={value}", value
    elif arg.startswith("--config.model_kwargs.") and "=" in arg:
      key, value = arg[len("--config.model_kwargs."):].split("=", 1)
      model_kwargs[key] = cli.literal(value)
      continue
    out.append(arg)
  cfg = cli.load_config(source)
  for arg in out:
    if arg.startswith("--config."):
      try:
        validation.field_parent(cfg, arg[len("--config."):].split("=", 1)[0])
      except validation.ConfigError as e:
        cli.fail(f"--config.{e}")
  return out, model_kwargs


def _joined(argv):
  """`--config X` and `--config.FIELD X` as `--config=X` and `--config.FIELD=X`."""
  out, i = [], 0
  while i < len(argv):
    arg = argv[i]
    if (arg == "--config" or arg.startswith("--config.")) and "=" not in arg and i + 1 < len(argv):
      out.append(f"{arg}={argv[i + 1]}")
      i += 2
      continue
    out.append(arg)
    i += 1
  return out


_CONFIG = None  # defined in run(), after _config_args: config_flags reads sys.argv when defined
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
  del argv  # cli.run refuses stray arguments
  cfg = _CONFIG.value
  with cfg.unlocked():
    if _DATA_DIR.value:
      cfg.data_dir = _DATA_DIR.value
    for key, value in _MODEL_KWARGS.items():
      cfg.model_kwargs[key] = value
  ledger = timing.Ledger(start=time.perf_counter() - timing.process_age())  # from the process's start
  ledger.add("start-up, imports, flags", time.perf_counter() - ledger.start)
  try:
    with timing.recording(ledger):
      runtime.join_cluster(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           _MULTIHOST.value)
      status = cli.StatusLine()
      experiment.train_and_evaluate(cfg, _WORKDIR.value, restart=_RESTART.value, log=status.log,
                                    status=status)
  except (experiment.UsageError, parallel.LayoutError) as e:
    cli.fail(e)
  if jax.process_index() == 0:
    print(ledger.waterfall())
    print(f"results: {os.path.join(_WORKDIR.value, 'results.jsonl')}")


_MODEL_KWARGS: dict = {}


def run():
  global _CONFIG
  argv, kwargs = _config_args(sys.argv)
  sys.argv[:] = argv
  _MODEL_KWARGS.update(kwargs)
  _CONFIG = config_flags.DEFINE_config_file("config", str(_PRESET_DIR / "lenet_quick.py"),
                                            "Preset name or config file.", lock_config=True)
  cli.run(main, argv=argv)


if __name__ == "__main__":
  run()
