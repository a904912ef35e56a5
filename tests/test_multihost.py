"""A multi-process run: two local processes share a mesh (gloo all-reduce on CPU), both compute,
only process 0 writes results, both take part in orbax checkpoints, and a killed run resumes.
The tickets of a process run the same per-ticket program as one process running them all one
at a time, so the records are bitwise those of the single-process run (with the same intra-op pool
size: test_devices.py)."""

import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, shared_data_dir
from tests.test_devices import LENET, POOL, assert_same_results, one_device
from tests.test_lottery_binary import _env, _midround_saved

needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")

ARGS = LENET + ["--config.execution.ticket_batch=1", "--config.execution.intervals_per_call=1",
                "--config.execution.checkpoint_every=50"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start_pair(workdir, cache):
  port = _free_port()
  return [subprocess.Popen(
      [sys.executable, "-m", "experiments.lottery", f"--workdir={workdir}", *ARGS,
       "--config.execution.cpu_devices=1", f"--coordinator_address=127.0.0.1:{port}",
       "--num_processes=2", f"--process_id={i}"],
      cwd=REPO, env=_env(cache, POOL), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]


def _finish(procs, timeout=240):
  outs = []
  for p in procs:
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out
    outs.append(out)
  return outs


@needs_mnist
@pytest.mark.heavy
def test_two_processes_match_one_and_resume_after_both_are_killed(tmp_path, jax_cache, run_once):
  """Both processes killed inside the pruned round, after a mid-round checkpoint; restarted, the
  pair resumes it. Round 0 (run by the first pair) and round 1 (finished by the second) both equal
  the single-process run."""
  single = one_device("lenet_one_device", LENET, run_once, jax_cache)
  workdir = tmp_path / "w"
  procs = _start_pair(workdir, jax_cache)
  saved = _midround_saved(workdir, 1)
  deadline = time.monotonic() + 240
  try:
    while not saved():
      assert all(p.poll() is None for p in procs), "finished before the kill point"
      assert time.monotonic() < deadline, "kill point never reached"
      time.sleep(0.002)
  finally:
    for p in procs:
      p.send_signal(signal.SIGKILL)
      p.wait()
  out0, out1 = _finish(_start_pair(workdir, jax_cache))
  assert "2x1 mesh" in out0 and "2 process(es)" in out0, out0
  assert "resuming round 1 at step" in out0, out0
  assert "round 1 done" in out0 and "round" not in out1, out1  # only process 0 reports
  assert_same_results(single, workdir, exact=True)


@pytest.mark.parametrize("args, fragment", [
    (["--num_processes=2"], "needs all of"),
    (["--coordinator_address=127.0.0.1:1", "--process_id=0"], "needs all of"),
    (["--coordinator_address=127.0.0.1:1", "--num_processes=2", "--process_id=2"], "process_id"),
    (["--num_processes=-3"], "num_processes"),
])
def test_partial_cluster_flags_are_one_line_errors(args, fragment, tmp_path, binaries):
  proc = binaries("experiments.lottery", [f"--workdir={tmp_path / 'w'}", *args])
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.rc == 1 and len(lines) == 1 and fragment in lines[0], proc.stderr
  assert not (tmp_path / "w").exists()
