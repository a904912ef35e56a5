"""lineage.npz: what the next round starts from, small, and enough to continue a run without checkpoints."""

import shutil
import types

import numpy as np
import pytest

from ltjax import lineup
from ltjax.runs import experiment, lineage_file, results
from ltjax.runs.validation import UsageError
from tests.conftest import shared_data_dir, tiny_lottery_config


def _lineage(seed=0, trials=2, round_index=3):
  rng = np.random.default_rng(seed)
  params = {"fc": {"kernel": rng.normal(size=(trials, 30, 7)).astype(np.float32),
                   "bias": np.zeros((trials, 7), np.float32)}}
  mask = {"fc": {"kernel": rng.random((trials, 30, 7)) < 0.3, "bias": np.ones((trials, 7), bool)}}
  return lineup.Lineage(round=round_index, init_params=params, init_model_state={}, start_params=params,
                        start_model_state={}, mask=mask, inverted_mask=mask,
                        found_after=np.array([400, 600], np.int32), dense_params=params)


def _fresh(lineage):
  ones = {"fc": {k: np.ones_like(v) for k, v in lineage.mask["fc"].items()}}
  return lineage.replace(round=0, mask=ones, inverted_mask=ones, found_after=np.zeros(2, np.int32),
                         start_params=lineage.init_params, dense_params=lineage.init_params)


def _cfg(mode="iterative"):
  return types.SimpleNamespace(prune=types.SimpleNamespace(mode=mode))


def _assert_same(a, b):
  assert a.round == b.round
  for x, y in zip(*(jax_leaves(t) for t in (a, b))):
    np.testing.assert_array_equal(x, y)


def jax_leaves(lineage):
  import jax
  return [np.asarray(x) for x in jax.tree.leaves(lineage)]


def _records_until(workdir, last_round):
  """What a run writes before each lineage file: the round's records and curves."""
  for r in range(last_round + 1):
    results.write_round(workdir, [{"round": r, "trial": 0, "kind": "ticket", "draw": 0, "density": 1.0,
                                   "early_stop_step": 100, "steps_trained": 100}])
    (workdir / "curves").mkdir(exist_ok=True)
    (workdir / "curves" / f"round_{r:02d}.npz").write_bytes(b"")


def test_masks_come_back_exactly_and_theta_0_is_not_stored(tmp_path):
  lineage = _lineage()
  lineage_file.save(tmp_path, lineage, _cfg())
  with np.load(tmp_path / lineage_file.FILE) as f:
    stored = set(f.files)
  assert not any("params" in k.split(":")[1].split("/")[0] for k in stored if ":" in k)  # init, start, dense
  assert "bits:mask/fc/kernel" in stored  # bit-packed: 8 weights a byte
  _assert_same(lineage_file.load(tmp_path / lineage_file.FILE, _fresh(lineage)), lineage)


def test_the_round_before_is_kept_and_a_file_ahead_of_its_records_is_not_used(tmp_path):
  lineage_file.save(tmp_path, _lineage(round_index=2), _cfg())
  lineage_file.save(tmp_path, _lineage(round_index=3), _cfg())
  assert lineage_file.rounds(tmp_path) == {}  # no records: continuing would lose rounds 1-2's
  _records_until(tmp_path, 1)
  assert lineage_file.rounds(tmp_path) == {2: tmp_path / lineage_file.PREVIOUS}
  _records_until(tmp_path, 2)
  assert lineage_file.rounds(tmp_path) == {2: tmp_path / lineage_file.PREVIOUS, 3: tmp_path / lineage_file.FILE}
  assert lineage_file.load(tmp_path / lineage_file.PREVIOUS, _fresh(_lineage())).round == 2


def test_theta_k_and_the_trained_dense_weights_are_stored_where_the_run_has_them(tmp_path):
  lineage = _lineage()
  theta_k = {"fc": {k: v + 1.0 for k, v in lineage.init_params["fc"].items()}}
  dense = {"fc": {k: v * 3.0 for k, v in lineage.init_params["fc"].items()}}
  inverted = {"fc": {k: ~v for k, v in lineage.mask["fc"].items()}}  # the 'inverted' control's
  rewound = lineage.replace(start_params=theta_k, dense_params=dense, inverted_mask=inverted)
  path = tmp_path / lineage_file.FILE
  lineage_file.save(tmp_path, rewound, _cfg("oneshot"))  # one-shot prunes the trained dense net
  _assert_same(lineage_file.load(path, _fresh(lineage)), rewound)
  starts = sorted(tmp_path.glob("lineage.start.*.npz"))
  assert len(starts) == 1
  written = starts[0].stat().st_mtime_ns
  lineage_file.save(tmp_path, rewound.replace(round=4), _cfg("iterative"))  # IMP never reads them: left out
  assert sorted(tmp_path.glob("lineage.start.*.npz")) == starts and starts[0].stat().st_mtime_ns == written
  back = lineage_file.load(path, _fresh(lineage))
  np.testing.assert_array_equal(back.start_params["fc"]["kernel"], theta_k["fc"]["kernel"])
  np.testing.assert_array_equal(back.dense_params["fc"]["kernel"], lineage.init_params["fc"]["kernel"])
  # theta_k is the same file round after round; one the lineage files no longer name goes
  lineage_file.save(tmp_path, lineage.replace(round=5), _cfg())
  lineage_file.save(tmp_path, lineage.replace(round=6), _cfg())
  assert not list(tmp_path.glob("lineage.start.*.npz"))
  lineage_file.save(tmp_path, rewound.replace(round=7), _cfg())
  starts[0].unlink()
  with pytest.raises(UsageError, match="missing"):
    lineage_file.load(path, _fresh(lineage))


def test_a_file_that_does_not_fit_the_config_is_one_clear_error(tmp_path):
  lineage_file.save(tmp_path, _lineage(seed=0), _cfg())
  path = tmp_path / lineage_file.FILE
  _records_until(tmp_path, 2)
  assert lineage_file.rounds(tmp_path) == {3: path}  # listing reads no weights: no check yet
  with pytest.raises(UsageError, match="other initial weights"):
    lineage_file.load(path, _fresh(_lineage(seed=1)))
  other = _lineage()
  other = other.replace(init_params={"fc": {"kernel": other.init_params["fc"]["kernel"][:, :20],
                                            "bias": other.init_params["fc"]["bias"]}})
  with pytest.raises(UsageError, match="other initial weights|does not fit"):
    lineage_file.load(path, _fresh(other))
  path.write_bytes(b"torn")
  with pytest.raises(UsageError, match="unreadable"):
    lineage_file.rounds(tmp_path)


def _copy_until(workdir, to, last_round):
  """A run's config, and its records and curves of rounds 0..last_round: what a study commits."""
  (to / "curves").mkdir(parents=True)
  shutil.copy(workdir / "config.json", to)
  for r in range(last_round + 1):
    shutil.copy(workdir / "curves" / f"round_{r:02d}.npz", to / "curves")
  results.write_round(to, [rec for rec in results.read(workdir) if rec["round"] <= last_round])


@pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")
def test_a_workdir_copied_without_checkpoints_continues_as_if_never_stopped(tmp_path, monkeypatch):
  """Records and lineage.npz of rounds 0-1 (what a study commits) carry the run on: rounds 2-3
  come out as the uninterrupted run's, record for record."""
  cfg = tiny_lottery_config(**{"train.steps": 100, "controls": ("reinit",)})
  whole, kept = tmp_path / "whole", tmp_path / "kept"
  save = lineage_file.save

  def save_and_keep(workdir, lineage, c):  # lineage.npz as it was after each round
    save(workdir, lineage, c)
    shutil.copy(workdir / lineage_file.FILE, tmp_path / f"after_{lineage.round - 1}.npz")
  monkeypatch.setattr(lineage_file, "save", save_and_keep)
  recs = experiment.train_and_evaluate(cfg, whole, log=lambda _: None)
  monkeypatch.setattr(lineage_file, "save", save)
  _copy_until(whole, kept, 1)
  shutil.copy(tmp_path / "after_1.npz", kept / lineage_file.FILE)
  lines = []
  again = experiment.train_and_evaluate(cfg, kept, log=lines.append)
  assert "resuming after round 1 (lineage.npz)" in lines
  assert not any(line.startswith(("round 0 done", "round 1 done")) for line in lines)  # not trained again
  fields = ("round", "trial", "kind", "draw", "density", "early_stop_step", "val_loss", "test_accuracy",
            "finding_steps")
  assert [{k: r[k] for k in fields} for r in again] == [{k: r[k] for k in fields} for r in recs]


@pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")
def test_points_side_by_side_continue_from_their_lineage_files(tmp_path, monkeypatch):
  """A sweep's points (here one rewinding to theta_k, which lineage.npz then holds) continue side by
  side from their copied records and lineage files, record for record; killed between the points'
  writes (one a round further on), they share the round before."""
  from ltjax.runs import together
  base = {"prune.rounds": 2, "train.steps": 100, "execution.ticket_batch": 1, "controls": ("reinit",)}
  points = [("k0", tiny_lottery_config(**base)),
            ("k50", tiny_lottery_config(**{**base, "prune.rewind_step": 50}))]
  save = lineage_file.save

  def save_and_keep(workdir, lineage, c):
    save(workdir, lineage, c)
    shutil.copy(workdir / lineage_file.FILE, tmp_path / f"{workdir.name}_after_{lineage.round - 1}.npz")
    for starts in workdir.glob("lineage.start.*.npz"):
      shutil.copy(starts, tmp_path / starts.name)
  monkeypatch.setattr(lineage_file, "save", save_and_keep)
  got = together.train_together(points, tmp_path / "whole", log=lambda _: None)
  monkeypatch.setattr(lineage_file, "save", save)
  with np.load(tmp_path / "k50_after_1.npz") as f:
    starts = str(f["starts"])  # theta_k, not reproducible from the seed, in a file of its own
  with np.load(tmp_path / "whole" / "k50" / starts) as f:
    assert "array:start_params/fc1/kernel" in f.files
  kept = {"k0": tmp_path / "kept" / "k0", "k50": tmp_path / "kept" / "k50"}
  _copy_until(tmp_path / "whole" / "k0", kept["k0"], 1)
  shutil.copy(tmp_path / "k0_after_0.npz", kept["k0"] / lineage_file.PREVIOUS)
  shutil.copy(tmp_path / "k0_after_1.npz", kept["k0"] / lineage_file.FILE)
  _copy_until(tmp_path / "whole" / "k50", kept["k50"], 0)  # killed before its round 1 was written
  shutil.copy(tmp_path / "k50_after_0.npz", kept["k50"] / lineage_file.FILE)
  shutil.copy(tmp_path / starts, kept["k50"] / starts)
  lines = []
  again = together.train_together(points, tmp_path / "kept", log=lines.append)
  assert "resuming after round 0" in lines
  fields = ("round", "trial", "kind", "density", "early_stop_step", "val_loss", "test_accuracy")
  for name, _ in points:
    assert [{k: r[k] for k in fields} for r in again[name]] == [{k: r[k] for k in fields} for r in got[name]]
