"""Tests for ltjax.data's TFDS loading: real MNIST / Fashion-MNIST, the decode cache, mocked
CIFAR-10, fail-fast errors and the prepare_data binary. All offline and CPU-only."""

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ltjax import data
from ltjax.data import datasets

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = pathlib.Path(__file__).resolve().parents[2] / "shared/datasets/tfds"
RAW_MNIST = SHARED_TFDS.parent / "raw/mnist"
HAS_TF = importlib.util.find_spec("tensorflow") is not None


def _real_data_dir(name: str) -> pathlib.Path:
  """$LTJAX_DATA_DIR, else ../shared/datasets/tfds, if it holds `name`; else skips the test."""
  env = os.environ.get(data.DATA_DIR_ENV)
  for d in ([pathlib.Path(env)] if env else []) + [SHARED_TFDS]:
    if (d / name).is_dir():
      return d
  pytest.skip(f"prepared {name} not found in ${data.DATA_DIR_ENV} or {SHARED_TFDS}; run "
              f"python -m experiments.prepare_data --dataset={name} --data_dir=DIR")


def _leftovers(directory: pathlib.Path) -> list[str]:
  """Temp files an interrupted/failed cache write would leave behind."""
  return [p.name for p in directory.rglob("*") if p.name.startswith(".") or "tmp" in p.suffix]


# --------------------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
  """MNIST loaded once (decoding) with a fresh cache dir; returns (dataset, data dir, cache dir)."""
  data_dir = _real_data_dir("mnist")
  cache_dir = tmp_path_factory.mktemp("mnist_cache")
  return data.load("mnist", data_dir=data_dir, cache_dir=cache_dir), data_dir, cache_dir


def test_mnist_shapes_and_dtypes(mnist):
  ds = mnist[0]
  assert (len(ds.train), len(ds.val), len(ds.test)) == (55_000, 5_000, 10_000)
  assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10 and ds.name == "mnist"
  for split in (ds.train, ds.val, ds.test):
    assert split.images.dtype == np.uint8 and split.labels.dtype == np.int32
    labels = np.asarray(split.labels)
    assert labels.min() == 0 and labels.max() == 9
    assert np.bincount(labels, minlength=10).min() > len(labels) // 20  # every class present


def test_mnist_validation_is_tail_of_train_and_disjoint(mnist):
  ds, data_dir, cache_dir = mnist
  full = data.load("mnist", data_dir=data_dir, cache_dir=cache_dir, validation_size=0)
  assert len(full.train) == 60_000 and len(full.val) == 0
  # Deterministic: train + val is exactly the TFDS train split, in order, with val its last 5000.
  np.testing.assert_array_equal(np.asarray(full.train.images[:55_000]), np.asarray(ds.train.images))
  np.testing.assert_array_equal(np.asarray(full.train.images[55_000:]), np.asarray(ds.val.images))
  np.testing.assert_array_equal(np.asarray(full.train.labels[55_000:]), np.asarray(ds.val.labels))
  source = tfds.data_source("mnist", split="train", data_dir=str(data_dir), download=False)
  for i in (0, 54_999, 55_000, 59_999):
    np.testing.assert_array_equal(np.asarray(full.train.images[i]), source[i]["image"])
    assert int(full.train.labels[i]) == source[i]["label"]
  # Disjoint by content too (MNIST has no exact duplicates across this boundary).
  train_rows = {r.tobytes() for r in np.asarray(ds.train.images).reshape(55_000, -1)}
  assert not any(r.tobytes() in train_rows for r in np.asarray(ds.val.images).reshape(5_000, -1))
  # The test split is untouched.
  np.testing.assert_array_equal(np.asarray(full.test.images), np.asarray(ds.test.images))


def test_mnist_normalization(mnist):
  ds, data_dir, cache_dir = mnist
  (mean,), (std,) = ds.mean, ds.std  # raw 0..255 units, from the 55k training examples
  assert 32 < mean < 35 and 77 < std < 80, (mean, std)
  train = np.asarray(ds.train.images)
  assert mean == pytest.approx(train.mean()) and std == pytest.approx(train.std())
  x = np.asarray(ds.normalize(ds.train.images[:5000]))
  assert x.dtype == np.float32 and abs(x.mean()) < 0.1 and 0.9 < x.std() < 1.1
  raw = data.load("mnist", data_dir=data_dir, cache_dir=cache_dir, normalization="none")
  assert raw.mean == (0.0,) and raw.std == (255.0,)
  x = np.asarray(raw.normalize(raw.train.images[:1000]))
  assert x.min() == 0.0 and x.max() == 1.0
  with pytest.raises(ValueError, match="normalization"):
    data.load("mnist", data_dir=data_dir, cache_dir=cache_dir, normalization="minmax")
  with pytest.raises(ValueError, match="validation_size"):
    data.load("mnist", data_dir=data_dir, cache_dir=cache_dir, validation_size=60_000)


def test_mnist_cache_hit_decodes_nothing_and_is_equal(mnist, monkeypatch):
  ds, data_dir, cache_dir = mnist
  assert sorted(p.name for p in cache_dir.iterdir()) == ["mnist-3.0.1.npz"]
  assert not _leftovers(cache_dir)

  def no_decode(*args, **kwargs):
    raise AssertionError("cache miss: decoded again")

  monkeypatch.setattr(datasets, "_decode_splits", no_decode)
  again = data.load("mnist", data_dir=data_dir, cache_dir=cache_dir)
  for a, b in [(ds.train, again.train), (ds.val, again.val), (ds.test, again.test)]:
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
  assert (again.mean, again.std, again.num_classes) == (ds.mean, ds.std, ds.num_classes)


def test_fashion_mnist_loads(tmp_path):
  ds = data.load("fashion_mnist", data_dir=_real_data_dir("fashion_mnist"), cache_dir=tmp_path)
  assert (len(ds.train), len(ds.val), len(ds.test)) == (55_000, 5_000, 10_000)
  assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
  assert ds.train.images.dtype == np.uint8 and 60 < ds.mean[0] < 85 and 80 < ds.std[0] < 100


# --------------------------------------------------------------------------- mocked CIFAR-10


def _write_mock_metadata(data_dir: pathlib.Path, num_examples: int) -> pathlib.Path:
  """Writes real TFDS metadata for cifar10 (from its code, splits of `num_examples`), no shards.

  With these files present, `mock_data(data_dir=...)` runs in its USE_FILES mode: TFDS reads our
  dataset_info.json like a prepared dataset and only the array_record reads are faked.
  """
  version_dir = data_dir / "cifar10" / "3.0.2"
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE):
    info = tfds.builder("cifar10").info
  template = tfds.core.ShardedFileTemplate(
      data_dir=version_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
      dataset_name="cifar10", filetype_suffix="array_record")
  info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=s, shard_lengths=[num_examples], num_bytes=0,
                          filename_template=template) for s in ("train", "test")]))
  info.set_file_format("array_record", override=True)
  version_dir.mkdir(parents=True)
  info.write_to_directory(version_dir)
  return version_dir


@pytest.fixture
def cifar(tmp_path, monkeypatch):
  """A mocked cifar10 (40 examples a split) under tmp_path; counts real decodes."""
  data_dir = tmp_path / "tfds"
  version_dir = _write_mock_metadata(data_dir, 40)
  decodes = []
  real_decode = datasets._decode_splits

  def counting_decode(*args, **kwargs):
    decodes.append(args)
    return real_decode(*args, **kwargs)

  monkeypatch.setattr(datasets, "_decode_splits", counting_decode)
  with tfds.testing.mock_data(num_examples=40, data_dir=str(data_dir)):
    yield data_dir, version_dir, tmp_path / "cache", decodes


def test_cifar10_mock_loads(cifar):
  data_dir, _, cache_dir, decodes = cifar
  ds = data.load("cifar10", data_dir=data_dir, validation_size=8, cache_dir=cache_dir)
  assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 8, 40)
  assert ds.input_shape == (32, 32, 3) and ds.num_classes == 10 and len(ds.mean) == 3
  assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int32
  assert 0 <= int(ds.train.labels.min()) and int(ds.train.labels.max()) < 10
  source = tfds.data_source("cifar10", split="train", data_dir=str(data_dir), download=False)
  np.testing.assert_array_equal(np.asarray(ds.train.images[3]), source[3]["image"])
  np.testing.assert_array_equal(np.asarray(ds.val.images[0]), source[32]["image"])
  assert len(decodes) == 1 and sorted(p.name for p in cache_dir.iterdir()) == ["cifar10-3.0.2.npz"]


def test_cache_invalidated_when_source_changes(cifar):
  data_dir, version_dir, cache_dir, decodes = cifar
  kwargs = dict(data_dir=data_dir, validation_size=8, cache_dir=cache_dir)
  first = data.load("cifar10", **kwargs)
  data.load("cifar10", **dict(kwargs, validation_size=4, normalization="none"))
  assert len(decodes) == 1  # other split / normalization options reuse the raw cache
  stat = (version_dir / "features.json").stat()
  os.utime(version_dir / "features.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  second = data.load("cifar10", **kwargs)
  assert len(decodes) == 2
  data.load("cifar10", **kwargs)
  assert len(decodes) == 2  # the rewritten cache matches the new fingerprint
  np.testing.assert_array_equal(np.asarray(first.train.images), np.asarray(second.train.images))
  assert sorted(p.name for p in cache_dir.iterdir()) == ["cifar10-3.0.2.npz"]
  assert not _leftovers(cache_dir)


@pytest.mark.parametrize("garbage", [b"not a zip file", b"PK\x03\x04truncated", b""])
def test_corrupt_cache_is_ignored_and_rewritten(cifar, garbage):
  data_dir, _, cache_dir, decodes = cifar
  first = data.load("cifar10", data_dir=data_dir, cache_dir=cache_dir, validation_size=8)
  cache_file = cache_dir / "cifar10-3.0.2.npz"
  cache_file.write_bytes(garbage)
  second = data.load("cifar10", data_dir=data_dir, cache_dir=cache_dir, validation_size=8)
  assert len(decodes) == 2
  np.testing.assert_array_equal(np.asarray(first.test.images), np.asarray(second.test.images))
  with np.load(cache_file) as f:  # rewritten whole
    assert f["train_images"].shape == (40, 32, 32, 3)
  data.load("cifar10", data_dir=data_dir, cache_dir=cache_dir, validation_size=8)
  assert len(decodes) == 2 and not _leftovers(cache_dir)


def test_cache_with_missing_key_is_ignored(cifar):
  data_dir, _, cache_dir, decodes = cifar
  data.load("cifar10", data_dir=data_dir, cache_dir=cache_dir, validation_size=8)
  cache_file = cache_dir / "cifar10-3.0.2.npz"
  with np.load(cache_file) as f:
    kept = {k: f[k] for k in f.files if k != "test_labels"}
  np.savez(cache_file, **kept)
  data.load("cifar10", data_dir=data_dir, cache_dir=cache_dir, validation_size=8)
  assert len(decodes) == 2


def test_unwritable_cache_dir_still_loads(cifar):
  data_dir, _, cache_dir, decodes = cifar
  blocker = cache_dir.parent / "a_file"
  blocker.write_text("")
  ds = data.load("cifar10", data_dir=data_dir, cache_dir=blocker / "sub", validation_size=8)
  assert len(ds.train) == 32 and len(decodes) == 1
  assert [p.name for p in cache_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_default_cache_dir(cifar, monkeypatch, tmp_path):
  data_dir, version_dir, _, decodes = cifar
  data.load("cifar10", data_dir=data_dir, validation_size=8)
  assert (version_dir / "ltjax_cache" / "cifar10-3.0.2.npz").is_file()
  # A read-only prepared dir (mode bits, so this holds for root too) falls back to ~/.cache/ltjax.
  (version_dir / "ltjax_cache" / "cifar10-3.0.2.npz").unlink()
  (version_dir / "ltjax_cache").rmdir()
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  version_dir.chmod(0o555)
  try:
    data.load("cifar10", data_dir=data_dir, validation_size=8)
    data.load("cifar10", data_dir=data_dir, validation_size=8)
  finally:
    version_dir.chmod(0o755)
  assert not (version_dir / "ltjax_cache").exists()
  assert [p.name for p in (tmp_path / "xdg" / "ltjax").glob("*/*")] == ["cifar10-3.0.2.npz"]
  assert len(decodes) == 2


def test_cache_file_is_world_readable_whatever_the_umask(tmp_path):
  """A cache is as readable as the data it was decoded from, even written under umask 077."""
  arrays = {"train_images": np.zeros((2, 2), np.uint8), "train_labels": np.zeros(2, np.int32),
            "test_images": np.zeros((1, 2), np.uint8), "test_labels": np.zeros(1, np.int32),
            "num_classes": np.asarray(10)}
  old = os.umask(0o077)
  try:
    datasets._write_cache(tmp_path / "c" / "x.npz", arrays, "fp")
  finally:
    os.umask(old)
  assert (tmp_path / "c" / "x.npz").stat().st_mode & 0o777 == 0o644
  assert datasets._read_cache(tmp_path / "c" / "x.npz", "fp")["num_classes"] == 10
  assert not _leftovers(tmp_path / "c")


# --------------------------------------------------------------------------- units


def test_source_fingerprint_tracks_files_info_and_format(tmp_path, monkeypatch):
  (tmp_path / "dataset_info.json").write_text(json.dumps({"version": "1.0.0"}))
  (tmp_path / "x-train.array_record-00000-of-00001").write_bytes(b"abc")
  base = data.source_fingerprint(tmp_path)
  assert data.source_fingerprint(tmp_path) == base
  (tmp_path / "ltjax_cache").mkdir()  # subdirs (the cache itself) don't count
  assert data.source_fingerprint(tmp_path) == base
  (tmp_path / "x-train.array_record-00000-of-00001").write_bytes(b"abcd")
  changed_size = data.source_fingerprint(tmp_path)
  (tmp_path / "dataset_info.json").write_text(json.dumps({"version": "1.0.1"}))
  changed_info = data.source_fingerprint(tmp_path)
  (tmp_path / "x-test.array_record-00000-of-00001").write_bytes(b"")
  added = data.source_fingerprint(tmp_path)
  monkeypatch.setattr(datasets, "CACHE_FORMAT_VERSION", datasets.CACHE_FORMAT_VERSION + 1)
  new_format = data.source_fingerprint(tmp_path)
  assert len({base, changed_size, changed_info, added, new_format}) == 5


class _FakeSource:
  """A data source of `n` items; `batched` None: no __getitems__, 'broken': it raises TypeError."""

  def __init__(self, n, batched=True):
    self.n, self.calls = n, []
    if batched:
      self.__getitems__ = self._broken if batched == "broken" else self._getitems

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    self.calls.append(i)
    return {"image": np.full((2, 2, 1), i, np.uint8), "label": i % 3}

  def _getitems(self, keys):
    self.calls.append(list(keys))
    return [{"image": np.full((2, 2, 1), i, np.uint8), "label": np.int64(i % 3)} for i in keys]

  def _broken(self, keys):
    raise TypeError("_getitems() missing 1 required positional argument")


@pytest.mark.parametrize("batched", [True, None, "broken"])
def test_read_split_chunks_and_fallback(monkeypatch, batched):
  monkeypatch.setattr(datasets, "_DECODE_CHUNK", 3)
  source = _FakeSource(7, batched)
  images, labels = datasets._read_split(source)
  assert images.shape == (7, 2, 2, 1) and images.dtype == np.uint8 and labels.dtype == np.int32
  np.testing.assert_array_equal(images[:, 0, 0, 0], np.arange(7))
  np.testing.assert_array_equal(labels, np.arange(7) % 3)
  expected = [[0, 1, 2], [3, 4, 5], [6]] if batched is True else list(range(7))
  assert source.calls == expected


def test_channel_stats_matches_numpy():
  x = np.random.default_rng(0).integers(0, 256, (50, 5, 5, 3), dtype=np.uint8)
  mean, std = data.channel_stats(x, chunk=7)  # many uneven chunks
  np.testing.assert_allclose(mean, x.reshape(-1, 3).mean(0), rtol=1e-12)
  np.testing.assert_allclose(std, x.reshape(-1, 3).std(0), rtol=1e-12)
  assert data.channel_stats(np.zeros((4, 3), np.float32))[1] == (1e-8,) * 3


def test_resolve_data_dir(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  assert data.resolve_data_dir() == tmp_path / "home" / "tensorflow_datasets"
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env"))
  assert data.resolve_data_dir() == tmp_path / "env"
  assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
  assert data.resolve_data_dir("~/x") == tmp_path / "home" / "x"


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("name", ["cifar10", "mnist:9.9.9"])
def test_missing_dataset_fails_fast(tmp_path, name, no_waiting):
  """Fails at once: no connection attempted and nothing waited for (TFDS would retry a download
  for minutes), whatever the machine's speed."""
  (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)  # a version dir without dataset_info.json
  with pytest.raises(data.DatasetNotFoundError) as info:
    data.load(name, data_dir=tmp_path)
  message = str(info.value)
  base = name.split(":")[0]
  assert "\n" not in message and str(tmp_path) in message
  assert f"python -m experiments.prepare_data --dataset={base} --data_dir={tmp_path}" in message
  assert isinstance(info.value, ValueError)


def test_a_config_naming_a_tfds_version_loads_that_version_not_a_python_loader(mnist):
  # 'mnist:3.0.1' is TFDS's own syntax; 'package.module:function' names a loader of yours.
  from ltjax import configs
  from ltjax.runs import experiment
  dataset, data_dir, _ = mnist
  version = data.prepared_dir("mnist", data_dir).name
  assert data.is_versioned(f"mnist:{version}") and not data.is_versioned("examples.data:blobs")
  cfg = configs.get("lenet_quick")
  cfg.dataset, cfg.data_dir = f"mnist:{version}", str(data_dir)
  loaded = experiment.load_dataset(cfg)
  assert loaded.name == "mnist" and len(loaded.train) == len(dataset.train)


def test_prepared_dir_picks_newest_version(tmp_path):
  for v in ("1.2.0", "1.10.0", "2.0.0"):
    (tmp_path / "ds" / v).mkdir(parents=True)
  for v in ("1.2.0", "1.10.0"):
    (tmp_path / "ds" / v / "dataset_info.json").write_text("{}")
  assert data.prepared_dir("ds", tmp_path).name == "1.10.0"  # 2.0.0 is incomplete
  assert data.prepared_dir("ds:1.2.0", tmp_path).name == "1.2.0"
  with pytest.raises(ValueError, match="expected a TFDS name"):
    data.prepared_dir("ds:latest", tmp_path)


# --------------------------------------------------------------------------- prepare_data binary


BAD_INPUTS = {
    "no_dataset": [],
    "unknown_dataset": ["--dataset=nosuchdataset"],
    "bad_manual_dir": ["--dataset=mnist", "--manual_dir=/nonexistent/raw"],
    "unknown_flag": ["--dataset=mnist", "--bogus=1"],
    "bad_version": ["--dataset=mnist:latest"],
}
BAD_INPUTS["offline_without_files"] = ["--dataset=mnist", f"--manual_dir={REPO}"]


@pytest.mark.parametrize("args", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_prepare_data_binary_one_line_errors(args, tmp_path, binaries):
  result = binaries("experiments.prepare_data", args, env={data.DATA_DIR_ENV: str(tmp_path / "tfds")})
  assert result.rc != 0
  assert "Traceback" not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  assert not (tmp_path / "tfds").exists()
