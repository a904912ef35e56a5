"""The ticket axis over several devices gives the one-device results.

Each run is a real subprocess of the binary, so `execution.cpu_devices` takes effect before JAX
starts. Spreading tickets over devices runs the same per-ticket program on each, so records,
curves and masks are bitwise those of one device running its tickets one at a time (iterative,
one-shot, padded, a conv net, a resumed run). Splitting each batch over devices (a 2x2 mesh)
changes how the gradient's sum is ordered: there masks and early-stop steps must be identical and
metrics within a stated tolerance. We measured at most 1.5e-7 there; the bounds are loose because
Adam turns an ulp in a near-zero gradient into a full +-lr step, which we saw grow to 1.6e-3 in a
random-mask ticket's validation loss over 200 steps: every curve's median difference <= 1e-6,
every value within 5e-3 (loss) and 2e-3 (accuracy: a few of 5,000 validation images).
"""

import json
import pathlib

import numpy as np
import pytest

from tests.conftest import shared_data_dir
from tests.test_lottery_binary import _midround_saved, _run_until, lottery

DATA_DIR = shared_data_dir()
needs_mnist = pytest.mark.skipif(DATA_DIR is None, reason="prepared MNIST not found")
MEDIAN_ATOL, LOSS_ATOL, ACCURACY_ATOL = 1e-6, 5e-3, 2e-3

LENET = ["--config=lenet_quick", "--config.trials=2", "--config.prune.rounds=1",
         "--config.train.steps=200", "--config.train.eval_every=50"]
ONESHOT = LENET + ["--config.prune.mode=oneshot", "--config.prune.densities=(0.3,)"]
EARLY_BIRD = LENET + ["--config.prune.mode=early_bird", "--config.prune.densities=(0.3,)",
                      "--config.trials=3", "--config.prune.early_bird_patience=1",
                      "--config.controls=('twin',)"]  # odd K: padded to the mesh
CONV = ["--config=conv2_cifar10", "--config.dataset=synthetic", "--config.trials=2",
        "--config.prune.rounds=1", "--config.train.steps=20", "--config.train.eval_every=10",
        "--config.train.batch_size=20", "--config.train.eval_batch_size=250"]
ONE_DEVICE = ["--config.execution.cpu_devices=1", "--config.execution.mesh=single"]


def _run(tmp_path, name, args, cache):
  workdir = tmp_path / name
  proc = lottery([f"--workdir={workdir}", *args], cache)
  assert proc.returncode == 0, proc.stderr
  return workdir, proc.stdout


def _load(workdir: pathlib.Path):
  recs = [json.loads(l) for l in (workdir / "results.jsonl").read_text().splitlines()]
  curves = {p.name: dict(np.load(p)) for p in sorted((workdir / "curves").glob("*.npz"))}
  masks = {p.name: dict(np.load(p)) for p in sorted((workdir / "masks").glob("*.npz"))}
  return recs, curves, masks


def assert_same_results(a: pathlib.Path, b: pathlib.Path, exact: bool = False):
  recs_a, curves_a, masks_a = _load(a)
  recs_b, curves_b, masks_b = _load(b)
  assert len(recs_a) == len(recs_b)
  floats = {}
  for x, y in zip(recs_a, recs_b):
    for key, value in x.items():
      if key == "wall_seconds":
        continue
      if isinstance(value, float) and not exact:
        floats.setdefault(key, []).append((value, y[key]))
      else:
        assert value == y[key], (key, x, y)
  assert masks_a.keys() == masks_b.keys() and curves_a.keys() == curves_b.keys()
  for name, blobs in masks_a.items():
    for key in blobs:
      np.testing.assert_array_equal(blobs[key], masks_b[name][key], err_msg=f"{name}:{key}")
  for name, blobs in curves_a.items():
    for key in blobs:
      if blobs[key].dtype.kind == "f" and not exact:
        floats[f"{name}:{key}"] = list(zip(blobs[key].ravel(), curves_b[name][key].ravel()))
      else:
        np.testing.assert_array_equal(blobs[key], curves_b[name][key], err_msg=f"{name}:{key}")
  for key, pairs in floats.items():
    diff = np.abs(np.subtract(*np.asarray(pairs, np.float64).T))
    bound = ACCURACY_ATOL if "accuracy" in key else LOSS_ATOL
    assert np.median(diff) <= MEDIAN_ATOL and diff.max() <= bound, (key, np.median(diff), diff.max())


@needs_mnist
@pytest.mark.parametrize("name, args, devices, exact", [
    ("lenet_iterative_3dev", LENET, ["--config.execution.cpu_devices=3"], True),   # K=2, 6 over 3
    ("lenet_oneshot_4dev", ONESHOT, ["--config.execution.cpu_devices=4"], True),   # 2->4, 6->8
    ("lenet_early_bird_2dev", EARLY_BIRD, ["--config.execution.cpu_devices=2"], True),  # 3->4
    ("lenet_batch_axis_2x2", LENET, ["--config.execution.cpu_devices=4",
                                      "--config.execution.mesh=2x2"], False),
])
def test_mesh_matches_one_device(name, args, devices, exact, tmp_path, jax_cache):
  one, _ = _run(tmp_path, "one", args + ONE_DEVICE + ["--config.execution.ticket_batch=1"], jax_cache)
  many, out = _run(tmp_path, name, args + devices, jax_cache)
  assert "mesh (tickets x batch)" in out, out
  assert_same_results(one, many, exact=exact)


def test_conv_net_mesh_matches_one_device(tmp_path, jax_cache):
  """A conv net on CPU runs unrolled: one ticket per device per call, the host loops over groups."""
  one, _ = _run(tmp_path, "one", CONV + ONE_DEVICE, jax_cache)
  many, out = _run(tmp_path, "many", CONV + ["--config.execution.cpu_devices=2"], jax_cache)
  assert "2x1 mesh" in out and "unroll True" in out, out
  assert_same_results(one, many, exact=True)


@needs_mnist
def test_padded_mesh_resumes_after_sigkill(tmp_path, jax_cache):
  """Killed inside the pruned round (6 tickets padded to 8 on 4 devices), resumed: same results."""
  args = LENET + ["--config.execution.cpu_devices=4", "--config.execution.intervals_per_call=1",
                  "--config.execution.checkpoint_every=50"]
  reference, _ = _run(tmp_path, "reference", args, jax_cache)
  killed = tmp_path / "killed"
  _run_until([f"--workdir={killed}", *args], jax_cache, _midround_saved(killed, 1))
  resumed = lottery([f"--workdir={killed}", *args], jax_cache)
  assert resumed.returncode == 0, resumed.stderr
  assert "resuming round 1 at step" in resumed.stdout, resumed.stdout
  assert_same_results(reference, killed, exact=True)


@pytest.mark.parametrize("args, fragment", [
    (["--config.execution.mesh=3x3"], "needs 9 devices"),
    (["--config.execution.mesh=sideways"], "unknown layout"),
    (["--config.execution.mesh=0x2"], "unknown layout"),
    (["--config.execution.cpu_devices=2", "--config.execution.mesh=1x2",
      "--config.train.batch_size=15"], "divisible by the batch axis"),
    (["--config=resnet20_cifar10", "--config.execution.cpu_devices=2",
      "--config.execution.mesh=1x2"], "BatchNorm"),
    (["--config.execution.cpu_devices=0"], "cpu_devices"),
])
def test_bad_layouts_are_one_line_and_write_nothing(args, fragment, tmp_path, jax_cache):
  workdir = tmp_path / "w"
  config = [a for a in args if a.startswith("--config=")]
  rest = [a for a in args if not a.startswith("--config=")]
  proc = lottery([f"--workdir={workdir}", *config, "--config.dataset=synthetic", *rest], jax_cache)
  assert proc.returncode == 1, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
  assert not workdir.exists()
