"""How JAX starts in this process: CPU cores as devices, joining other processes, the persistent
compilation cache, and matmul precision.

All of it must happen before JAX's first computation (JAX fixes devices and the cluster when its
backend starts), so experiments call `start` first; the library itself never reads flags.
"""

from __future__ import annotations

import os
import pathlib

import jax
from jax.experimental import multihost_utils

from ltjax import files
from ltjax.engine.parallel import LayoutError

PRECISIONS = ("default", "high", "highest")
CACHE_ENV = "LTJAX_CACHE_DIR"


def start(cpu_devices: int = -1, compilation_cache: bool = True, cache_dir: str = "",
          matmul_precision: str = "highest") -> int:
  """Devices, compilation cache and precision for this process; returns the CPU device count."""
  if matmul_precision not in PRECISIONS:
    raise LayoutError(f"matmul precision must be one of {PRECISIONS}, got {matmul_precision!r}")
  jax.config.update("jax_default_matmul_precision", matmul_precision)
  if compilation_cache:
    enable_compilation_cache(cache_dir)
  return use_cpu_devices(cpu_devices)


def default_cache_dir() -> pathlib.Path:
  """$LTJAX_CACHE_DIR, else the user's cache dir ($XDG_CACHE_HOME or ~/.cache)/ltjax/jax."""
  return files.cache_dir("jax", env=CACHE_ENV)


def enable_compilation_cache(cache_dir: str | os.PathLike = "") -> pathlib.Path:
  """JAX's persistent compilation cache, so a rerun loads its programs instead of compiling them.

  Every program is cached (JAX's defaults skip those compiling in under a second, which is all
  of LeNet's). A cache dir set by the user for JAX itself wins.
  """
  path = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
  if jax.config.jax_compilation_cache_dir and not cache_dir:
    return pathlib.Path(jax.config.jax_compilation_cache_dir)
  path.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def use_cpu_devices(setting: int) -> int:
  """Expose CPU cores as JAX devices: -1 (auto) one per core, up to 8; n exactly n.

  JAX fixes the count when its backend starts, so this must run before any JAX computation.
  Auto then leaves a started backend as it is; an explicit count that cannot be had is an error.
  Returns the number of CPU devices in use.
  """
  from jax._src import xla_bridge  # noqa: PLC0415 -- the only way to ask without starting it
  if setting != -1 and setting < 1:
    raise LayoutError(f"cpu_devices must be -1 (one per core) or >= 1, got {setting}")
  want = max(1, min(len(os.sched_getaffinity(0)), 8)) if setting == -1 else setting
  if not xla_bridge.backends_are_initialized():
    jax.config.update("jax_num_cpu_devices", want)
  have = len(jax.local_devices(backend="cpu"))
  if setting != -1 and have != want:
    raise LayoutError(f"execution.cpu_devices={want} cannot be honoured: JAX already started with "
                      f"{have} CPU devices (set it before any JAX computation)")
  return have


# ---------------------------------------------------------------- several processes
def join_cluster(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1,
                 auto: bool = False) -> None:
  """Join a multi-process run before any JAX computation.

  Either all three of coordinator address, process count and process id (a run launched by
  hand), or `auto`: JAX's own detection of TPU pods, SLURM and other cluster environments (any
  of the three given as well overrides the detected value). On CPU, processes all-reduce
  through gloo.
  """
  if num_processes < 0 or process_id < -1:
    raise LayoutError(f"--num_processes must be >= 1 and --process_id >= 0 (got {num_processes} and "
                      f"{process_id})")
  given = [bool(coordinator_address), num_processes > 0, process_id >= 0]
  if any(given) and not all(given) and not auto:
    raise LayoutError("a multi-process run needs all of --coordinator_address, --num_processes "
                      "and --process_id (or --multihost to detect them)")
  if all(given) and not 0 <= process_id < num_processes:
    raise LayoutError(f"--process_id must be in [0, {num_processes}), got {process_id}")
  if not (auto or all(given)):
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # With --multihost, whatever was given by hand overrides what JAX detects.
  jax.distributed.initialize(coordinator_address or None, num_processes or None,
                             process_id if process_id >= 0 else None)


def barrier(name: str) -> None:
  """Wait for every process (a no-op in a single-process run)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def describe_machine() -> str:
  """The devices and, on a CPU, its vector extensions: XLA's CPU code, and so the last bits of
  every float, differs between AVX2 and AVX-512 machines (records are bit-identical only on one
  kind), which config.json therefore records."""
  devices = jax.devices()
  text = f"{len(devices)} x {devices[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}"
  if jax.default_backend() == "cpu":
    text += f", {_cpu()}"
  return text


def _cpu() -> str:
  try:
    info = pathlib.Path("/proc/cpuinfo").read_text()
  except OSError:
    return "host CPU"
  model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
               "host CPU")
  flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), ()))
  vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
  return f"{model} with {vector}"

