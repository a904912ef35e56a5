"""First-run preparation: TFDS's own builder without TensorFlow, offline fast failure."""

import gzip
import json
import os

import numpy as np
import pytest
from conftest import SHARED_TFDS, shared_data_dir

from ltjax import data
from ltjax.data import prepare

RAW_MNIST = SHARED_TFDS.parent / "raw" / "mnist"
needs_raw = pytest.mark.skipif(not RAW_MNIST.is_dir() or shared_data_dir() is None,
                               reason="needs the raw MNIST files and the prepared official copy")


@pytest.fixture
def first_run(run_once, binaries):
  """The README's first command on a machine with no prepared data (the raw files stand in for
  the download), run once: its folder holds the prepared `tfds/`, the workdir `w/` and `stdout`."""
  def make(root):
    ran = binaries("experiments.lottery", ["--config.train.steps=100", "--config.prune.rounds=0",
                                           "--config.trials=1", f"--workdir={root / 'w'}"],
                   env={data.DATA_DIR_ENV: str(root / "tfds"), prepare.MANUAL_DIR_ENV: str(RAW_MNIST)},
                   timeout=300)
    assert ran.rc == 0, ran.stderr[-2000:]
    (root / "stdout").write_text(ran.stdout)
  return run_once("first_run_prepares_mnist", make)


@needs_raw
def test_prepared_without_tensorflow_equals_the_official_copy(first_run, tmp_path):
  path = next((first_run / "tfds" / "mnist").iterdir())
  ours = data.load("mnist", data_dir=first_run / "tfds", cache_dir=tmp_path / "c1")
  official = data.load("mnist", data_dir=shared_data_dir())
  for split in ("train", "val", "test"):  # same examples in the same (TFDS-shuffled) order
    a, b = getattr(ours, split), getattr(official, split)
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
  info = json.loads((path / "dataset_info.json").read_text())
  ref = json.loads((shared_data_dir() / "mnist" / path.name / "dataset_info.json").read_text())
  assert info["moduleName"] == ref["moduleName"]
  assert [(s["name"], s["shardLengths"]) for s in info["splits"]] == \
      [(s["name"], s["shardLengths"]) for s in ref["splits"]]


def test_offline_fails_at_once_and_writes_nothing(tmp_path, no_waiting):
  assert os.environ[prepare.OFFLINE_ENV] == "1"  # conftest: tests never touch the network
  with pytest.raises(data.DatasetNotFoundError, match=r"cannot be downloaded now.*LTJAX_OFFLINE"):
    prepare.prepare("mnist", tmp_path / "tfds", log=lambda _: None)
  assert not (tmp_path / "tfds").exists()


def test_an_unreachable_host_is_refused_within_the_timeout(tmp_path, monkeypatch):
  """The probe bounds both the connection and the wait for it by its timeout (checked as
  arguments, not with a clock), and a refused connection is the one-line offline error."""
  monkeypatch.delenv(prepare.OFFLINE_ENV)
  connect, waits = prepare.socket.create_connection, []

  def spy_connect(address, timeout=None, **kwargs):
    waits.append(("connect", address, timeout))
    return connect(address, timeout=timeout, **kwargs)
  monkeypatch.setattr(prepare.socket, "create_connection", spy_connect)
  probe = prepare._Probe("mnist", tmp_path, "127.0.0.1", timeout=1.0)  # local: port 443 is closed
  join = probe._thread.join
  monkeypatch.setattr(probe._thread, "join", lambda t=None: (waits.append(("join", t)), join(t)))
  with pytest.raises(data.DatasetNotFoundError, match="no connection to 127.0.0.1"):
    probe.check()
  assert sorted(waits) == [("connect", ("127.0.0.1", 443), 1.0), ("join", 1.0)], waits  # any order


def test_unknown_dataset_and_bad_manual_dir(tmp_path):
  with pytest.raises(data.DatasetNotFoundError, match="^dataset: unknown TFDS dataset 'nosuchdataset'"):
    prepare.prepare("nosuchdataset", tmp_path)
  with pytest.raises(ValueError, match="manual_dir"):
    prepare.prepare("mnist", tmp_path, manual_dir=tmp_path / "missing")


def test_read_idx(tmp_path):
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  raw = b"\0\0\x08\x03" + b"".join(n.to_bytes(4, "big") for n in images.shape) + images.tobytes()
  (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
  np.testing.assert_array_equal(prepare.read_idx(tmp_path / "x.gz"), images)
  (tmp_path / "bad").write_bytes(b"\1\2\3\4")
  with pytest.raises(ValueError, match="not an IDX file"):
    prepare.read_idx(tmp_path / "bad")


@needs_raw
def test_a_first_run_prepares_its_dataset(first_run):
  assert "preparing mnist from the files in" in (first_run / "stdout").read_text()
  assert (first_run / "tfds" / "mnist").is_dir() and (first_run / "w" / "results.jsonl").is_file()
