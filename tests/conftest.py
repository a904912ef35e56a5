"""Shared fixtures: tiny models and data so every test runs the real code in seconds on a CPU."""

import dataclasses
import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys

# The suite's time is mostly XLA:CPU compiling hundreds of tiny programs. At LLVM level 1 they
# compile faster than at the default 3 and compute the same bits (tests/test_oneoff.py checks a
# training step both ways); level 0 compiles faster still but contracts no multiply-adds (other
# bits) and trains several times slower (BUILD_NOTES, "The test suite"). Set before JAX starts its
# backend; the binaries' subprocesses inherit it.
# For the same reason XLA's older elemental emitters replace its fusion emitters: they compile
# about twice as fast and compute the same bits, though their programs run 2-3x slower (which
# these tiny runs barely feel; the one-off programs of `ltjax.engine.oneoff` use them for users).
for _flag in ("--xla_backend_optimization_level=1", "--xla_cpu_use_fusion_emitters=false"):
  if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ltjax import configs, data, models  # noqa: E402
from ltjax.core import masks  # noqa: E402
from ltjax.core.roles import PRUNABLE  # noqa: E402

# Tests never touch the network: a dataset that is not on disk fails at once instead of probing
# its download host (subprocesses inherit this).
os.environ["LTJAX_OFFLINE"] = "1"
# Start JAX now, with one CPU device: an experiment's auto device setting would otherwise pick the
# count for the whole test process. Multi-device runs are tested in subprocesses.
jax.devices()

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = REPO.parent / "shared" / "datasets" / "tfds"

# The files that take longest, longest first (summed test times of a full run, 2-core EPYC,
# 2026-12-01: test_together about 220 s down to test_report about 40 s). `--dist=loadfile` keeps a
# file on one worker, and xdist otherwise queues the files with the most tests first, so the
# long files with few tests (end-to-end runs) came last and one worker ran them alone for the
# last three minutes. Order only: every test still runs, and passes in any order.
_LONGEST_FIRST = ("test_together", "test_experiment", "test_train", "test_lottery_binary",
                  "test_criteria", "test_sweep", "test_examples", "test_dynamic", "test_prepare",
                  "test_structured", "test_devices", "test_models", "test_data",
                  "test_sparse_training", "test_straight_through", "test_gradual", "test_bad_input",
                  "test_report")


def pytest_configure(config):
  if hasattr(config.option, "loadscopereorder"):  # xdist: keep the order below, not by test count
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: files keep their order


class FakeClock:
  """A clock the test moves by hand (`clock.now += 3.0`); starts at 0, as `time.monotonic` does at boot."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def shared_data_dir() -> pathlib.Path | None:
  """Prepared TFDS data for integration tests: $LTJAX_DATA_DIR, else ../shared/datasets/tfds."""
  env = os.environ.get("LTJAX_DATA_DIR")
  for d in ([pathlib.Path(env)] if env else []) + [SHARED_TFDS]:
    if (d / "mnist").is_dir():
      return d
  return None


@pytest.fixture(scope="session")
def tiny_data():
  return data.synthetic(seed=0, num_train=600, num_test=200, validation_size=200, shape=(6, 6, 1))


@pytest.fixture(scope="session")
def small_mlp(tiny_data):
  """A 36-16-8-10 MLP with its spec, init function and layer roles."""
  spec = models.registry.ModelSpec(
      name="test_mlp", build=lambda num_classes=10: models.mlp.MLP(hidden=(16, 8), num_classes=num_classes),
      output_layer="out")
  module = spec.build()
  shape = (1,) + tiny_data.input_shape

  @jax.jit  # one program: eagerly (and vmapped), flax's init compiles every op on its own
  def init(key):
    return module.init(key, jnp.zeros(shape))["params"]

  roles = spec.layer_roles(jax.eval_shape(init, jax.random.key(0)))
  return spec, module, init, roles


def tiny_lottery_config(**overrides):
  """The quick LeNet preset shrunk for tests (a quarter of LeNet-300-100's width, 2 trials, 3 rounds
  of 200 steps, 1,000 validation examples) on the shared MNIST; `overrides` are dotted field
  paths, e.g. tiny_lottery_config(**{"train.steps": 100})."""
  cfg = configs.get("lenet_quick")
  cfg.data_dir = str(shared_data_dir())
  cfg.model_kwargs.width = 0.25  # 75-25 hidden units: the same programs at a quarter of the work
  cfg.validation_size = 1000
  cfg.trials = 2
  cfg.prune.rounds = 3
  cfg.train.steps = 200
  cfg.train.eval_every = 50
  for key, value in overrides.items():
    node = cfg
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return cfg


def _run_root(tmp_path_factory) -> pathlib.Path:
  """A folder shared by every process of one pytest run: with xdist, the parent of the workers'
  base temp dirs (pytest keeps the last three runs' and deletes older ones)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def jax_cache(tmp_path_factory):
  """One compilation cache for the whole pytest run: every worker, every in-process experiment
  and every binary's subprocess loads what another already compiled (same programs, same bits;
  never the user's cache)."""
  from ltjax.engine import runtime  # noqa: PLC0415
  cache = _run_root(tmp_path_factory) / "jax-cache"
  cache.mkdir(exist_ok=True)
  os.environ["LTJAX_CACHE_DIR"] = str(cache)  # subprocesses inherit it
  runtime.enable_compilation_cache(cache)
  return cache


@pytest.fixture(scope="session")
def run_once(tmp_path_factory):
  """`run_once(name, make)`: the folder `make(folder)` fills, made once per pytest run whichever
  worker asks first (the others wait for it), so an expensive end-to-end run is shared by every
  test that reads it. A `make` that fails leaves nothing, and the next caller tries again."""
  root = _run_root(tmp_path_factory) / "once"
  root.mkdir(exist_ok=True)

  def once(name: str, make) -> pathlib.Path:
    path = root / name
    with open(root / f"{name}.lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      if not (path / ".done").exists():
        shutil.rmtree(path, ignore_errors=True)
        make(path)
        (path / ".done").touch()
    return path
  return once


@dataclasses.dataclass
class Ran:
  rc: int | str
  stdout: str
  stderr: str


class Binaries:
  """Runs `python -m MODULE ARGV` in a forked child of a warm server (tests/forkserver.py)."""

  def __init__(self, tmp: pathlib.Path):
    self.tmp, self.count = tmp, 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "forkserver.py")], cwd=REPO,
                                 env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

  def __call__(self, module: str, argv, cwd=None, env=None, timeout: float = 60) -> Ran:
    self.count += 1
    out = str(self.tmp / f"run{self.count}")
    req = {"module": module, "argv": list(argv), "cwd": str(cwd or REPO), "env": env or {},
           "out": out, "timeout": timeout}
    self.proc.stdin.write(json.dumps(req) + "\n")
    self.proc.stdin.flush()
    rc = json.loads(self.proc.stdout.readline())["rc"]
    return Ran(rc, pathlib.Path(out + ".out").read_text(), pathlib.Path(out + ".err").read_text())

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def binaries(tmp_path_factory):
  runner = Binaries(tmp_path_factory.mktemp("binaries"))
  yield runner
  runner.close()


@pytest.fixture
def no_waiting(monkeypatch):
  """Makes "fails at once" checkable without a clock: any connection attempt or sleep in the
  test's process is an error (a slow machine passes, a retrying one fails)."""
  import socket  # noqa: PLC0415
  import time  # noqa: PLC0415

  def refuse(*args, **kwargs):
    raise AssertionError(f"waited or connected: {args!r}")
  monkeypatch.setattr(socket, "create_connection", refuse)
  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(time, "sleep", refuse)


def layer_counts(mask, roles) -> dict[str, int]:
  """Surviving weights per prunable leaf, keyed by path ('fc1/kernel')."""
  flat = jax.tree_util.tree_flatten_with_path(mask)[0]
  return {masks.path_str(path): int(np.sum(m)) for (path, m), r in zip(flat, jax.tree.leaves(roles))
          if r in PRUNABLE}


def layer_sizes(tree, roles) -> dict[str, int]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {masks.path_str(path): int(np.size(x)) for (path, x), r in zip(flat, jax.tree.leaves(roles))
          if r in PRUNABLE}


def read_workdir(workdir: pathlib.Path, wall_seconds: bool = False):
  """(records, curves, masks) of a lottery workdir; records without their wall time unless asked."""
  recs = [json.loads(x) for x in (workdir / "results.jsonl").read_text().splitlines()]
  if not wall_seconds:
    for r in recs:
      r.pop("wall_seconds")
  curves = {p.name: dict(np.load(p)) for p in sorted((workdir / "curves").glob("*.npz"))}
  masks = {p.name: dict(np.load(p)) for p in sorted((workdir / "masks").glob("*.npz"))}
  return recs, curves, masks


def assert_same_run(a: pathlib.Path, b: pathlib.Path):
  """Two workdirs hold the same records (wall time aside), curves and masks, bit for bit."""
  recs_a, curves_a, masks_a = read_workdir(a)
  recs_b, curves_b, masks_b = read_workdir(b)
  assert recs_a == recs_b
  for blobs_a, blobs_b in ((curves_a, curves_b), (masks_a, masks_b)):
    assert blobs_a.keys() == blobs_b.keys()
    for name in blobs_a:
      assert blobs_a[name].keys() == blobs_b[name].keys()
      for key in blobs_a[name]:
        np.testing.assert_array_equal(blobs_a[name][key], blobs_b[name][key], err_msg=f"{name}:{key}")
