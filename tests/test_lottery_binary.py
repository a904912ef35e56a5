"""The binary as a user runs it: one-line errors, the workdir lock, and resume after SIGKILL."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, assert_same_run, shared_data_dir

DATA_DIR = shared_data_dir()
needs_mnist = pytest.mark.skipif(DATA_DIR is None, reason="prepared MNIST not found")

TINY = ["--config=lenet_quick", "--config.model_kwargs.width=0.25", "--config.trials=2", "--config.prune.rounds=2",
        "--config.train.steps=200", "--config.train.eval_every=50", "--config.validation_size=1000",
        "--config.execution.intervals_per_call=1", "--config.execution.checkpoint_every=50"]


def _env(tmp_cache, extra=None):
  env = dict(os.environ)
  env.update(LTJAX_DATA_DIR=str(DATA_DIR or "/nonexistent"), JAX_PLATFORMS="cpu",
             # Share compiled programs between the processes of a test: same results, less waiting.
             JAX_COMPILATION_CACHE_DIR=str(tmp_cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", **(extra or {}))
  return env


def lottery(args, cache, env=None, **kw):
  return subprocess.run([sys.executable, "-m", "experiments.lottery", *args], cwd=REPO,
                        env=_env(cache, env), capture_output=True, text=True, timeout=300, **kw)


def _assert_one_line_error(proc, fragment):
  assert proc.rc != 0
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert "Traceback" not in proc.stderr, proc.stderr
  assert len(lines) == 1, proc.stderr
  assert fragment in lines[0], lines[0]


def refused(binaries, args):
  """The binary on `args` in a forked child of the warm server: a refusal needs no fresh Python."""
  return binaries("experiments.lottery", args, env={"LTJAX_DATA_DIR": str(DATA_DIR or "/nonexistent")})


@pytest.mark.parametrize("args, fragment", [
    (["--config=no_such_preset"], "unknown preset"),
    (["--config.model=nope"], "model: unknown model"),
    (["--config.dataset=no_such_dataset"], "no_such_dataset"),
    (["--config.prune.fc_rate=1.0"], "prune.fc_rate: must be in [0.0, 1.0)"),
    (["--config.prune.output_rate=-0.1"], "prune.output_rate: must be in [0.0, 1.0)"),
    (["--config.train.steps=-5"], "train.steps"),
    (["--config.train.steps=100", "--config.train.eval_every=500"], "larger than the run"),
    (["--config.train.steps=100", "--config.prune.rewind_step=200"], "beyond the training length"),
    (["--workdir=/proc/ltjax_cannot_write_here"], "not writable"),
    (["--data_dir=/nonexistent/tfds"], "/nonexistent/tfds"),
    (["--no_such_flag"], "no_such_flag"),
    (["--config.train.steps=abc"], "steps"),
])
def test_bad_input_is_one_line_and_nonzero(args, fragment, tmp_path, binaries):
  proc = refused(binaries, [f"--workdir={tmp_path / 'w'}", *args]
                 if not any(a.startswith("--workdir") for a in args) else args)
  _assert_one_line_error(proc, fragment)


@needs_mnist
def test_second_process_on_a_workdir_is_refused(tmp_path, binaries):
  with open(tmp_path / ".lock", "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running experiment holds it
    proc = refused(binaries, [f"--workdir={tmp_path}", *TINY])
  _assert_one_line_error(proc, "in use by another process")


@needs_mnist
def test_workdir_with_another_config_is_refused(tmp_path, binaries):
  (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "conv2"}}))
  proc = refused(binaries, [f"--workdir={tmp_path}", *TINY])
  _assert_one_line_error(proc, "different config")


def _run_until(args, cache, condition, timeout=240, env=None):
  """Start the binary, SIGKILL it as soon as `condition()` holds; return its output so far."""
  proc = subprocess.Popen([sys.executable, "-m", "experiments.lottery", *args], cwd=REPO,
                          env=_env(cache, env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  deadline = time.monotonic() + timeout
  try:
    while not condition():
      if proc.poll() is not None:
        raise AssertionError(f"finished before the kill point:\n{proc.stdout.read()}")
      if time.monotonic() > deadline:
        raise AssertionError("kill point never reached")
      time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait()
  return proc.stdout.read()


def _killed_at(point, args, cache):
  """Run the binary under tests/killed_at.py, which SIGKILLs it at `point`; return its output."""
  proc = subprocess.run([sys.executable, str(REPO / "tests" / "killed_at.py"), point,
                         "experiments.lottery", *args], cwd=REPO, env=_env(cache),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
  return proc.stdout


def _midround_saved(workdir, round_index):
  """A completed mid-round checkpoint that belongs to `round_index`."""
  def cond():
    mid = workdir / "checkpoints" / "midround"
    if not mid.is_dir():
      return False
    for step in (p for p in mid.iterdir() if p.name.isdigit()):
      try:
        meta = json.loads((step / "meta" / "metadata").read_text())
      except (OSError, ValueError):
        continue
      if meta.get("round") == round_index and (step / "commit_success.txt").exists():
        return True
    return False
  return cond


def _round_files_written(workdir, round_index):
  return lambda: (workdir / "masks" / f"round_{round_index:02d}.npz").exists()


@needs_mnist
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, jax_cache, reference):
  """One lineage killed at every kind of point in turn, each time resumed by the next process:
  inside a round (after a mid-round checkpoint), between rounds (round 1's files written), and
  during a checkpoint (the one after round 2 written but not yet renamed: the torn one is skipped,
  and lineage.npz, written just before, says round 2 is done). The final records, curves and masks
  equal the uninterrupted run's."""
  workdir = tmp_path / "killed"
  args = [f"--workdir={workdir}", *TINY]
  _run_until(args, jax_cache, _midround_saved(workdir, 1))
  out = _run_until(args, jax_cache, _round_files_written(workdir, 1))
  assert "resuming round 1 at step" in out, out
  _killed_at("round_checkpoint_commit:3", args, jax_cache)
  assert any("tmp" in p.name for p in (workdir / "checkpoints" / "rounds").iterdir())
  resumed = lottery(args, jax_cache)
  assert resumed.returncode == 0, resumed.stderr
  assert "resuming after round 2 (lineage.npz)" in resumed.stdout, resumed.stdout
  assert "round 2 done" not in resumed.stdout  # nothing computed is done twice
  assert_same_run(reference, workdir)
  assert not list(workdir.rglob("*.tmp")), "temporary files left behind"


@pytest.fixture
def reference(run_once, jax_cache):
  """The uninterrupted run, made once per pytest run."""
  if DATA_DIR is None:
    pytest.skip("prepared MNIST not found")

  def make(workdir):
    proc = lottery([f"--workdir={workdir}", *TINY], jax_cache)
    assert proc.returncode == 0, proc.stderr
    assert "round 2 done" in proc.stdout and "ticket" in proc.stdout
    assert "where the time went" in proc.stdout and "training + validation" in proc.stdout
  return run_once("tiny_reference", make)
