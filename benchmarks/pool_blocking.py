r"""Does a matmul's result depend on XLA:CPU's intra-op pool size? (issue 18)

  python -m benchmarks.pool_blocking                    # devices 1..4, XLA's own pool, then pinned
  python -m benchmarks.pool_blocking --devices=1,3 --nprocs=,8

For each (device count, PJRT_NPROC) a fresh process runs LeNet-300-100's three matmul shapes
(forward 60x784 @ 784x300, weight gradient 784x60 @ 60x300, input gradient 60x300 @ 300x784) on
device 0 as one jitted program, at `highest` precision, and prints one JSON line with a digest of
each result. Equal digests across device counts mean layouts cannot differ by their matmuls.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from absl import flags

from experiments import cli

_DEVICES = flags.DEFINE_list("devices", ["1", "2", "3", "4"], "JAX CPU device counts.")
_NPROCS = flags.DEFINE_list("nprocs", ["", "4"], "PJRT_NPROC values ('' = XLA's own pool).")
cli.check_flag("devices", cli.is_int_list, "devices must be integers >= 1")
cli.check_flag("nprocs", lambda v: all(x == "" or (x.isdigit() and int(x) >= 1) for x in v),
               "nprocs must be empty or integers >= 1")


def digests(devices: int) -> list[str]:
  """Digests of the three LeNet matmuls, computed on device 0 of a `devices`-device client."""
  import jax  # noqa: PLC0415 -- the device count must be set first
  import numpy as np  # noqa: PLC0415
  jax.config.update("jax_num_cpu_devices", devices)
  jax.config.update("jax_default_matmul_precision", "highest")
  rng = np.random.default_rng(0)
  x, w, g = (rng.standard_normal(s, np.float32) for s in ((60, 784), (784, 300), (60, 300)))
  out = jax.jit(lambda x, w, g: (x @ w, x.T @ g, g @ w.T))(x, w, g)
  return [hashlib.sha256(np.asarray(o).tobytes()).hexdigest()[:12] for o in out]


def main(argv):
  del argv
  for nproc in _NPROCS.value:
    for devices in (int(d) for d in _DEVICES.value):
      env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC")}
      if nproc:
        env["PJRT_NPROC"] = nproc
      code = f"import json, benchmarks.pool_blocking as b; print(json.dumps(b.digests({devices})))"
      out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()[-1]
      forward, weight_grad, input_grad = json.loads(out)
      print(json.dumps({"bench": "pool_blocking", "devices": devices, "cores": len(os.sched_getaffinity(0)),
                        "pjrt_nproc": nproc or None, "forward": forward, "weight_grad": weight_grad,
                        "input_grad": input_grad}))


if __name__ == "__main__":
  cli.run(main)
