"""Mask overlap, connectivity and initial-value statistics on hand-made masks; reading workdirs,
and theta_0 from their round checkpoints."""

import json

import numpy as np
import pytest

from ltjax.reports import analysis
from tests.report_workdirs import write_checkpoint


def test_jaccard_of_identical_masks_is_one_and_of_disjoint_masks_zero():
  a = np.array([[1, 0, 1], [0, 1, 0]], bool)
  assert analysis.jaccard(a, a) == 1.0
  assert analysis.jaccard(a, ~a) == 0.0
  b = np.array([[1, 1, 0], [0, 1, 0]], bool)  # shares 2 of the 4 kept by either
  assert analysis.jaccard(a, b) == pytest.approx(0.5)
  empty = np.zeros((2, 3), bool)
  assert analysis.jaccard(empty, empty) == 1.0  # two empty masks are identical
  with pytest.raises(ValueError, match="shape"):
    analysis.jaccard(a, a.T)


def test_pairwise_jaccard_covers_every_pair_once():
  a = np.array([1, 1, 0, 0], bool)
  masks = np.stack([a, a, ~a])
  np.testing.assert_allclose(analysis.pairwise_jaccard(masks), [1.0, 0.0, 0.0])
  assert analysis.pairwise_jaccard(masks[:1]).size == 0


def test_chance_jaccard_matches_random_masks():
  assert analysis.chance_jaccard(1.0) == 1.0
  assert analysis.chance_jaccard(0.5) == pytest.approx(1 / 3)
  rng = np.random.default_rng(0)
  n, d = 100_000, 0.3
  a, b = (rng.permutation(np.arange(n) < d * n) for _ in range(2))
  assert analysis.jaccard(a, b) == pytest.approx(analysis.chance_jaccard(d), abs=0.01)


def test_connectivity_counts_on_a_hand_made_mask():
  fc1 = np.array([[1, 0, 0],
                  [1, 1, 0],
                  [1, 0, 0],
                  [0, 1, 0]], bool)            # 4 inputs -> 3 hidden units
  fc2 = np.array([[1, 1],
                  [0, 0],
                  [1, 0]], bool)               # 3 hidden -> 2 outputs
  np.testing.assert_array_equal(analysis.incoming(fc1), [3, 2, 0])
  np.testing.assert_array_equal(analysis.outgoing(fc1), [1, 2, 1, 1])
  conv = np.ones((3, 3, 1, 4), bool)
  units = analysis.hidden_connectivity({"conv/kernel": conv, "fc1/kernel": fc1, "fc2/kernel": fc2})
  assert len(units) == 1  # conv -> fc1 is no unit pair; fc1 -> fc2 is
  u = units[0]
  assert (u.layer, u.next_layer, u.fan_in, u.fan_out) == ("fc1/kernel", "fc2/kernel", 4, 2)
  np.testing.assert_array_equal(u.incoming, [3, 2, 0])
  np.testing.assert_array_equal(u.outgoing, [2, 0, 1])
  assert u.dead == 2  # unit 1 has no way out, unit 2 no way in


def test_layer_order_is_natural_with_the_output_last():
  assert analysis.layer_order(["out/kernel", "fc10/kernel", "fc2/kernel", "conv1/kernel"]) == [
      "conv1/kernel", "fc2/kernel", "fc10/kernel", "out/kernel"]


def test_value_stats_of_survivors():
  init = np.array([[-2.0, -0.1], [0.1, 2.0]])
  mask = np.array([[True, False], [False, True]])
  kept = analysis.survivors(init, mask)
  np.testing.assert_array_equal(kept, [-2.0, 2.0])
  stats = analysis.value_stats(kept, init)
  assert stats["n"] == 2 and stats["mean"] == 0.0
  assert stats["abs_ratio"] == pytest.approx(2.0 / 1.05)  # away from zero
  assert stats["near_zero"] == 0.0 and stats["near_zero_reference"] == 0.5
  assert np.isnan(analysis.value_stats(np.array([]), init)["abs_ratio"])


def test_spread_keeps_first_and_last():
  assert analysis.spread(range(17), 4) == [0, 5, 11, 16]
  assert analysis.spread([0, 1], 4) == [0, 1]


def test_unpack_masks_round_trips_packbits():
  rng = np.random.default_rng(1)
  masks = {"fc1/kernel": rng.random((2, 5, 13)) < 0.5, "fc1/bias": np.ones((2, 13), bool)}
  arrays = {k: np.packbits(m, axis=-1) for k, m in masks.items()}
  arrays.update({f"shape:{k}": np.asarray(m.shape[1:]) for k, m in masks.items()})
  out = analysis.unpack_masks(arrays)
  assert set(out) == set(masks)
  for k, m in masks.items():
    np.testing.assert_array_equal(out[k], m)


def test_load_run_refuses_bad_workdirs(tmp_path):
  with pytest.raises(analysis.ReportError, match="does not exist"):
    analysis.load_run(tmp_path / "missing")
  with pytest.raises(analysis.ReportError, match="no results.jsonl"):
    analysis.load_run(tmp_path)
  (tmp_path / "results.jsonl").write_text("")
  with pytest.raises(analysis.ReportError, match="no records"):
    analysis.load_run(tmp_path)


def test_run_reads_records_and_config(tmp_path):
  recs = [{"round": r, "trial": t, "kind": k, "density": d, "layer_density": {"out/kernel": d,
           "fc1/kernel": d}, "early_stop_step": 100, "test_accuracy": 0.9, "diverged": False, "draw": 0,
           "steps_trained": 100}
          for r, d in ((0, 1.0), (1, 0.8)) for t in range(2)
          for k in (("ticket",) if r == 0 else ("ticket", "random_mask"))]
  (tmp_path / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
  (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "lenet_300_100"}}))
  run = analysis.load_run(tmp_path, label="mine")
  assert run.label == "mine" and run.rounds == [0, 1] and run.trials == 2
  assert run.kinds == ["ticket", "random_mask"]
  assert run.layers == ["fc1/kernel", "out/kernel"]
  assert run.density(1) == pytest.approx(0.8)
  assert run.curves(0) is None and run.masks(0) is None and run.init_params is None


def test_mask_cache_keeps_the_last_rounds_read_and_rereads_the_rest(tmp_path):
  from ltjax.runs import results  # noqa: PLC0415
  rng = np.random.default_rng(0)
  (tmp_path / "masks").mkdir()
  rounds = {r: {"fc1": {"kernel": rng.random((2, 5, 16)) < 0.5}} for r in range(analysis._CACHED_ROUNDS + 2)}
  for r, m in rounds.items():
    np.savez(tmp_path / "masks" / f"round_{r:02d}.npz", **results.pack_masks(m, [0, 1]))
  (tmp_path / "results.jsonl").write_text(json.dumps({"round": 0, "trial": 0, "kind": "ticket", "draw": 0,
                                                      "density": 1.0, "layer_density": {}, "early_stop_step": 90,
                                                      "steps_trained": 100}) + "\n")
  run = analysis.load_run(tmp_path)
  for r in rounds:
    np.testing.assert_array_equal(run.masks(r)["fc1/kernel"], rounds[r]["fc1"]["kernel"])
  assert sorted(run._masks) == list(rounds)[-analysis._CACHED_ROUNDS:]  # the oldest were dropped
  np.testing.assert_array_equal(run.masks(0)["fc1/kernel"], rounds[0]["fc1"]["kernel"])  # read again


def _theta(seed=0, trials=2):
  rng = np.random.default_rng(seed)
  return {"fc1/kernel": rng.normal(size=(trials, 5, 4)).astype(np.float32),
          "fc1/bias": np.zeros((trials, 4), np.float32),
          "out/kernel": rng.normal(size=(trials, 4, 3)).astype(np.float32)}


def test_initial_params_are_the_lineage_theta_0_of_the_checkpoints(tmp_path):
  init = _theta()
  start = write_checkpoint(tmp_path, init, next_round=3)
  got = analysis.initial_params(tmp_path)
  assert set(got) == set(init)
  for key, value in init.items():
    np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert not np.array_equal(got[key], start[key])  # theta_0, not the round's start weights


def test_initial_params_skip_torn_checkpoints_and_write_nothing(tmp_path):
  assert analysis.initial_params(tmp_path) is None
  assert not (tmp_path / "checkpoints").exists()  # looking made no directory
  init = _theta(1)
  write_checkpoint(tmp_path, init, next_round=2)
  rounds = tmp_path / "checkpoints" / "rounds"
  (rounds / "7" / "state").mkdir(parents=True)  # newest, but torn: killed mid-save
  (rounds / "7" / "state" / "_METADATA").write_text("{not json")
  (rounds / "9.orbax-checkpoint-tmp-1").mkdir()  # a save in progress: not a checkpoint yet
  before = sorted(tmp_path.rglob("*"))
  np.testing.assert_array_equal(analysis.initial_params(tmp_path)["out/kernel"], init["out/kernel"])
  assert sorted(tmp_path.rglob("*")) == before  # read-only: a running experiment's files stay
  for step in rounds.iterdir():
    if step.name.isdigit() and step.name != "7":
      (step / "state" / "_METADATA").unlink()
  assert analysis.initial_params(tmp_path) is None  # nothing readable left
