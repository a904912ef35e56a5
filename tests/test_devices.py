"""The ticket axis over several devices gives the one-device results.

Each run is a real subprocess of the binary, so `execution.cpu_devices` takes effect before JAX
starts. Spreading tickets over devices runs the same per-ticket program on each, so records,
curves and masks are bitwise those of one device running its tickets one at a time (iterative,
one-shot, padded, a conv net, a resumed run), provided XLA:CPU's intra-op thread pool has the same
size in both runs: XLA sizes it max(cores, devices), and Eigen blocks a matmul's sum by the pool
size, so 3 devices on 2 cores (a 3-thread pool) round a weight gradient differently from 1 device
(2 threads) on AVX2 CPUs. No layout with at most one device per core changes the pool; the heavy
tests force up to 4 devices on 2 cores, so each of their runs pins the pool with PJRT_NPROC
(README).

Splitting each batch over devices (a 2x2 mesh) changes how the gradient's sum is ordered. Adam
turns an ulp in a near-zero gradient into a full +-lr step, which we saw grow to 1.6e-3 in a
random-mask ticket's validation loss over 200 steps, so metrics are compared within loose bounds:
every curve's median difference <= 1e-6, every value within 5e-3 (loss) and 2e-3 (accuracy: a few
of the validation images). The same steps carry weights across the magnitude threshold (on AVX2,
2,335 of 59,584 bytes of fc1's packed round-1 IMP mask differed after 200 steps), so the 2x2 case
prunes at init (magnitude of theta_0, the same in every layout) and trains the pruned round with
its controls on split batches. The early-stop step is the minimum of the validation curve, so
where two of its points lie within the loss bound (a near-tie) either may win: the test accepts a
different early-stop step only at such a near-tie, and then compares the points each run stopped at.
"""

import json
import os
import pathlib

import numpy as np
import pytest

from tests.conftest import read_workdir, shared_data_dir
from tests.test_lottery_binary import _midround_saved, _run_until, lottery

DATA_DIR = shared_data_dir()
needs_mnist = pytest.mark.skipif(DATA_DIR is None, reason="prepared MNIST not found")
MEDIAN_ATOL, LOSS_ATOL, ACCURACY_ATOL = 1e-6, 5e-3, 2e-3
# One intra-op pool size for every heavy run, whatever its device count (module doc); runs with at
# most one device per core need none.
POOL = {"PJRT_NPROC": "4"}
# Fields measured at the early-stop point: at a near-tie the two runs may stop at different steps.
AT_EARLY_STOP = ("val_loss", "val_accuracy", "test_accuracy")

LENET = ["--config=lenet_quick", "--config.model_kwargs.width=0.25", "--config.trials=2", "--config.prune.rounds=1",
         "--config.train.steps=200", "--config.train.eval_every=50",
         "--config.validation_size=1000"]
ONESHOT = LENET + ["--config.prune.mode=oneshot", "--config.prune.densities=(0.3,)"]
AT_INIT = LENET + ["--config.prune.mode=at_init", "--config.prune.score=magnitude",
                   "--config.prune.densities=(0.3,)"]
EARLY_BIRD = LENET + ["--config.prune.mode=early_bird", "--config.prune.densities=(0.3,)",
                      "--config.trials=3", "--config.prune.early_bird_patience=1",
                      "--config.train.steps=100", "--config.train.eval_every=25",
                      "--config.controls=('twin',)"]  # odd K: padded to the mesh
CONV = ["--config=conv2_cifar10", "--config.dataset=synthetic", "--config.trials=2",
        "--config.prune.rounds=1", "--config.train.steps=4", "--config.train.eval_every=2",
        "--config.train.batch_size=20", "--config.train.eval_batch_size=250",
        "--config.validation_size=250"]
# More devices than cores, several processes: minutes on 2 cores, so they run after the everyday
# suite (`pytest -m heavy`, .ci/run); the everyday suite keeps the two-device ticket layout.
heavy = pytest.mark.heavy
ONE_DEVICE = ["--config.execution.cpu_devices=1", "--config.execution.mesh=single",
              "--config.execution.ticket_batch=1"]


def _run(workdir, args, cache, pool=True):
  proc = lottery([f"--workdir={workdir}", *args], cache, env=POOL if pool else None)
  assert proc.returncode == 0, proc.stderr
  return workdir, proc.stdout


def one_device(name, args, run_once, cache, pool=True):
  """The one-device run of `args` (with the pinned pool, or XLA's own), made once per pytest run
  and shared by every test comparing with it (here and in test_multihost.py)."""
  return run_once(f"{name}_{'pinned' if pool else 'own'}_pool",
                  lambda workdir: _run(workdir, args + ONE_DEVICE, cache, pool))


def _val_loss_at(curves, record, step):
  """Run's validation loss of `record`'s ticket at `step`, from its curves."""
  c = curves[f"round_{record['round']:02d}.npz"]
  kind = list(c["kinds"]).index(record["kind"])
  col = [i for i, (t, k, d) in enumerate(c["ids"]) if (t, k, d) == (record["trial"], kind, record["draw"])]
  row = list(c["step"][:, col[0]]).index(step)
  return float(c["val_loss"][row, col[0]])


def assert_same_results(a: pathlib.Path, b: pathlib.Path, exact: bool = False):
  """Bitwise equal (`exact`), or within the module's tolerances with early stopping's near-ties."""
  recs_a, curves_a, masks_a = read_workdir(a, wall_seconds=True)
  recs_b, curves_b, masks_b = read_workdir(b, wall_seconds=True)
  assert len(recs_a) == len(recs_b)
  floats = {}
  for x, y in zip(recs_a, recs_b):
    stops = x["early_stop_step"], y["early_stop_step"]
    tie = not exact and stops[0] != stops[1]
    if tie:  # a near-tie: each run's curve has both points within the loss tolerance
      for curves in (curves_a, curves_b):
        losses = [_val_loss_at(curves, x, step) for step in stops]
        assert abs(losses[0] - losses[1]) <= LOSS_ATOL, ("early stop moved without a near-tie", x, y, losses)
      floats.setdefault("val_loss", []).append((x["val_loss"], y["val_loss"]))  # both minima
    for key, value in x.items():
      if key == "wall_seconds" or (tie and key in AT_EARLY_STOP + ("early_stop_step",)):
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
@pytest.mark.parametrize("name, base, args, devices, exact", [
    ("lenet_iterative_2dev", "lenet", LENET, ["--config.execution.cpu_devices=2"], True),  # K=2, 6 over 2
    pytest.param("lenet_iterative_3dev", "lenet", LENET, ["--config.execution.cpu_devices=3"], True,
                 marks=heavy),  # 2->3, 6 over 3
    pytest.param("lenet_oneshot_4dev", "oneshot", ONESHOT, ["--config.execution.cpu_devices=4"], True,
                 marks=heavy),  # 2->4, 6->8
    pytest.param("lenet_early_bird_2dev", "early_bird", EARLY_BIRD,
                 ["--config.execution.cpu_devices=2"], True, marks=heavy),  # 3->4
    pytest.param("lenet_batch_axis_2x2", "at_init", AT_INIT, ["--config.execution.cpu_devices=4",
                                                              "--config.execution.mesh=2x2"], False,
                 marks=heavy),
])
def test_mesh_matches_one_device(name, base, args, devices, exact, tmp_path, jax_cache, run_once):
  # At most one device per core: XLA's own pool is the cores' count in both runs.
  pool = name != "lenet_iterative_2dev" or len(os.sched_getaffinity(0)) < 2
  one = one_device(f"{base}_one_device", args, run_once, jax_cache, pool)
  many, out = _run(tmp_path / name, args + devices, jax_cache, pool)
  assert "mesh (tickets x batch)" in out, out
  assert_same_results(one, many, exact=exact)


@heavy
def test_conv_net_mesh_matches_one_device(tmp_path, jax_cache):
  """A conv net on CPU runs unrolled: one ticket per device per call, the host loops over groups."""
  one, _ = _run(tmp_path / "one", CONV + ONE_DEVICE, jax_cache)
  many, out = _run(tmp_path / "many", CONV + ["--config.execution.cpu_devices=2"], jax_cache)
  assert "2x1 mesh" in out and "unroll True" in out, out
  assert_same_results(one, many, exact=True)


@needs_mnist
@heavy
def test_padded_mesh_resumes_after_sigkill(tmp_path, jax_cache, run_once):
  """Killed inside the pruned round (6 tickets padded to 8 on 4 devices), resumed: the results of
  one device, bitwise."""
  args = LENET + ["--config.execution.cpu_devices=4", "--config.execution.intervals_per_call=1",
                  "--config.execution.checkpoint_every=50"]
  reference = one_device("lenet_one_device", LENET, run_once, jax_cache)
  killed = tmp_path / "killed"
  _run_until([f"--workdir={killed}", *args], jax_cache, _midround_saved(killed, 1), env=POOL)
  resumed = lottery([f"--workdir={killed}", *args], jax_cache, env=POOL)
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
def test_bad_layouts_are_one_line_and_write_nothing(args, fragment, tmp_path, binaries):
  workdir = tmp_path / "w"
  config = [a for a in args if a.startswith("--config=")]
  rest = [a for a in args if not a.startswith("--config=")]
  # A forked child of the warm server: JAX is imported there but not started, as in a fresh process.
  proc = binaries("experiments.lottery", [f"--workdir={workdir}", *config, "--config.dataset=synthetic",
                                          *rest])
  assert proc.rc == 1, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
  assert not workdir.exists()


def _fake_run(workdir, stop, val_losses):
  """A one-ticket workdir whose validation curve is `val_losses` at steps 50, 100 and early stop
  at `stop`, for checking the comparison itself."""
  (workdir / "curves").mkdir(parents=True)
  (workdir / "masks").mkdir()
  loss = dict(zip((50, 100), val_losses))[stop]
  rec = {"round": 0, "trial": 0, "kind": "ticket", "draw": 0, "early_stop_step": stop, "val_loss": loss,
         "val_accuracy": 0.9, "test_accuracy": 0.9 if stop == 50 else 0.95, "wall_seconds": 1.0}
  (workdir / "results.jsonl").write_text(json.dumps(rec) + "\n")
  np.savez(workdir / "curves" / "round_00.npz", ids=np.array([[0, 0, 0]]), kinds=np.array(["ticket"]),
           step=np.array([[50], [100]], np.int32), val_loss=np.array([[v] for v in val_losses], np.float32))
  np.savez(workdir / "masks" / "round_00.npz", **{"fc1/kernel": np.ones(8, np.uint8)})
  return workdir


def test_a_moved_early_stop_passes_only_at_a_near_tie(tmp_path):
  a = _fake_run(tmp_path / "a", 50, (0.2, 0.2000001))
  assert_same_results(a, _fake_run(tmp_path / "tie", 100, (0.2000001, 0.2)))  # a last-bit flip
  with pytest.raises(AssertionError, match="without a near-tie"):
    assert_same_results(a, _fake_run(tmp_path / "far", 100, (0.30, 0.20)))
  with pytest.raises(AssertionError):  # bitwise comparisons allow no moved early stop at all
    assert_same_results(a, _fake_run(tmp_path / "exact", 100, (0.2000001, 0.2)), exact=True)
