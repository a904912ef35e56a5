"""The examples run, at a tiny size, as a user runs them: your network on your arrays, your score
against magnitude with controls and a report, and the binary on a network named by import path."""

import json

import pytest
from conftest import shared_data_dir


def _records(workdir):
  return [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]


def test_own_network_on_own_arrays(binaries, tmp_path):
  ran = binaries("examples.own_network", [f"--workdir={tmp_path}", "--steps=40", "--rounds=1",
                                          "--trials=1"], timeout=300)
  assert ran.rc == 0, ran.stderr
  kinds = {(r["round"], r["kind"]) for r in _records(tmp_path)}
  assert kinds == {(0, "ticket"), (1, "ticket"), (1, "reinit"), (1, "random_mask")}
  assert (tmp_path / "report" / "summary.md").exists()
  assert "random_mask  trial 0" in ran.stdout


def test_own_score_against_magnitude_with_controls(binaries, tmp_path):
  if shared_data_dir() is None:
    pytest.skip("needs prepared MNIST")
  ran = binaries("examples.own_score", [f"--workdir={tmp_path}", "--steps=40", "--rounds=1",
                                        "--trials=1"],
                 env={"LTJAX_DATA_DIR": str(shared_data_dir())}, timeout=300)
  assert ran.rc == 0, ran.stderr
  for score in ("magnitude", "large_and_moved"):
    config = json.loads((tmp_path / score / "config.json").read_text())["config"]
    assert config["prune"]["score"] == score
    assert {r["kind"] for r in _records(tmp_path / score)} == {"ticket", "reinit", "random_mask"}
  summary = (tmp_path / "report" / "summary.md").read_text()
  assert "lenet_magnitude" in summary and "lenet_large_and_moved" in summary


def test_the_binary_on_a_network_data_and_score_named_by_import_path(binaries, tmp_path):
  ran = binaries("experiments.lottery", [
      f"--workdir={tmp_path}", "--config=lenet_quick", "--config.model=examples.networks:TwoLayerMLP",
      "--config.model_kwargs.hidden=8", "--config.dataset=examples.data:blobs",
      "--config.trials=1", "--config.prune.rounds=1", "--config.train.steps=20",
      "--config.train.eval_every=10", "--config.validation_size=100",
      "--config.roles=('Dense_1/kernel=fixed',)", "--config.imports=('examples.scores',)",
      "--config.prune.score=large_and_moved"], timeout=300)
  assert ran.rc == 0, ran.stderr
  recs = _records(tmp_path)
  assert {r["kind"] for r in recs} == {"ticket", "reinit", "random_mask"}
  assert set(recs[-1]["layer_density"]) == {"Dense_0/kernel", "Dense_2/kernel"}  # Dense_1 fixed


@pytest.mark.parametrize("flag, message", [
    ("--config.model=examples.networks:Nope", "model: 'examples.networks' has no attribute 'Nope'"),
    ("--config.model=nowhere:Net", "model: cannot import 'nowhere'"),
    ("--config.model=examples.networks", "model: unknown model 'examples.networks'"),
    ("--config.dataset=examples.data:nope", "dataset: 'examples.data' has no attribute 'nope'"),
    ("--config.imports=('nowhere.scores',)", "imports: cannot import 'nowhere.scores'"),
    ("--config.roles=('nothing/*=fixed',)", "roles: pattern 'nothing/*' matches no parameter"),
    ("--config.roles=('out/kernel=big',)", "roles: item 0: 'big' is not a role"),
])
def test_bad_import_paths_are_one_line_before_anything_is_written(binaries, tmp_path, flag, message):
  ran = binaries("experiments.lottery", [f"--workdir={tmp_path / 'w'}", "--config=lenet_quick",
                                         "--config.dataset=synthetic", flag], timeout=120)
  assert ran.rc == 1 and ran.stderr.startswith(f"error: {message}"), ran.stderr
  assert ran.stderr.count("\n") == 1
  assert not (tmp_path / "w").exists()
