"""Runs ltjax's binaries many times, fast: a warm Python process forks a fresh child per call.

Each child is a new process as far as a binary can tell (fresh absl flags, JAX not started, its
own stdout/stderr and exit status), but skips the 2-3 s of importing JAX, flax and TFDS, so
property tests can afford hundreds of bad inputs. The server imports libraries only, never a
binary (binaries define absl flags when imported). Protocol: one JSON request per line on stdin
({"module", "argv", "cwd", "env", "out", "timeout"}), one JSON reply per line on stdout ({"rc"}).
"""

import json
import os
import runpy
import signal
import sys
import time
import traceback

import absl.flags  # noqa: F401
import flax  # noqa: F401
import jax  # noqa: F401
import matplotlib  # noqa: F401
import ml_collections  # noqa: F401
import optax  # noqa: F401
import orbax.checkpoint  # noqa: F401
import tensorflow_datasets  # noqa: F401

import ltjax.methods.xor  # noqa: F401
import ltjax.reports.analysis  # noqa: F401
import ltjax.runs.experiment  # noqa: F401


def _child(req):
  os.chdir(req["cwd"])
  os.environ.update(req["env"])
  for fd, suffix in ((1, ".out"), (2, ".err")):
    f = os.open(req["out"] + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(f, fd)
    os.close(f)
  sys.argv = [req["module"], *req["argv"]]
  code = 0
  try:
    runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  except BaseException:  # noqa: BLE001 -- a traceback is what the tests look for
    traceback.print_exc()
    code = 99
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def main():
  for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
      _child(req)
    deadline = time.monotonic() + req.get("timeout", 60)
    while True:
      done, status = os.waitpid(pid, os.WNOHANG)
      if done:
        rc = os.waitstatus_to_exitcode(status)
        break
      if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        rc = "timeout"
        break
      time.sleep(0.01)
    sys.stdout.write(json.dumps({"rc": rc}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
  main()
