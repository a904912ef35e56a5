"""First-run preparation: TFDS's own builder without TensorFlow, offline fast failure, and the
TFDS versions (and internals) it is known to work with."""

import configparser
import gzip
import importlib.metadata
import inspect
import json
import os
import urllib.parse

import numpy as np
import pytest
from conftest import REPO, SHARED_TFDS, shared_data_dir
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
def test_prepared_without_tensorflow_equals_the_official_copy(first_run):
  path = next((first_run / "tfds" / "mnist").iterdir())
  # The first run's binary decoded our copy through TFDS and cached the arrays beside it (the
  # default cache): reading them back saves decoding 70,000 PNGs a second time.
  assert any(path.glob("ltjax_cache/*")), sorted(p.name for p in path.iterdir())
  ours = data.load("mnist", data_dir=first_run / "tfds")
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
  with pytest.raises(data.DatasetNotFoundError, match=r"^dataset: 'mnist:9.9.9' .* can prepare mnist at 3.0.1 only"):
    prepare.prepare("mnist:9.9.9", tmp_path / "tfds")  # refused before any download, offline or not
  assert not (tmp_path / "tfds").exists()
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


# ---------------------------------------------------------------- the TFDS it works with
# prepare.py subclasses TFDS's MNIST builder, so setup.cfg pins tensorflow-datasets to the versions
# it was checked against; these two tests say at once (no network) when the installed TFDS is not one.
def _tfds_requirement() -> Requirement:
  cfg = configparser.ConfigParser()
  cfg.read(REPO / "setup.cfg")
  lines = [l.strip() for l in cfg["options"]["install_requires"].splitlines()]
  reqs = [Requirement(l) for l in lines if l and not l.startswith("#")]
  return next(r for r in reqs if canonicalize_name(r.name) == "tensorflow-datasets")


def test_the_installed_tfds_is_a_supported_version():
  req = _tfds_requirement()
  operators = {spec.operator for spec in req.specifier}
  assert operators & {">=", ">", "~=", "=="} and operators & {"<", "<=", "~=", "=="}, (
      f"setup.cfg must bound tensorflow-datasets on both sides (prepare.py uses its internals): {req}")
  installed = importlib.metadata.version("tensorflow-datasets")
  assert req.specifier.contains(installed, prereleases=True), (
      f"tensorflow-datasets {installed} is installed, but ltjax/data/prepare.py subclasses TFDS's "
      f"MNIST builder and supports tensorflow-datasets{req.specifier} only (setup.cfg). Install a "
      f"supported one (pip install 'tensorflow-datasets{req.specifier}'), or check prepare.py against "
      f"{installed} (test_prepared_without_tensorflow_equals_the_official_copy, with the raw MNIST "
      "files) and then widen the pin in setup.cfg.")


def _builder_internals(tfds, name, root, need):
  """What `prepare` takes from TFDS's `name` builder; then its subclass, built as `prepare` does."""
  cls = tfds.builder_cls(name)
  need(f"{name}: a tfds.core.GeneratorBasedBuilder", lambda: issubclass(cls, tfds.core.GeneratorBasedBuilder))
  need(f"{name}: .name", lambda: cls.name == name)
  need(f"{name}: ._split_generators(dl_manager) and ._generate_examples",
       lambda: "dl_manager" in inspect.signature(cls._split_generators).parameters
       and callable(cls._generate_examples))
  need(f"{name}: .URL on the host prepare probes ({prepare._HOSTS.get(name)})",
       lambda: urllib.parse.urlparse(cls.URL).hostname == prepare._HOSTS[name])
  need(f"{name}: .url_infos (registered checksums) for MNIST's four IDX files", lambda: {
      urllib.parse.urljoin(cls.URL, f) for f in prepare._IDX_FILES.values()} <= set(cls.url_infos))
  sub = prepare._idx_builder(cls)
  need(f"{name}: the subclass stays unregistered", lambda: tfds.builder_cls(name) is cls)
  builder = sub(data_dir=str(root), file_format="array_record")
  need(f"{name}: builder.info.download_size (a number of bytes; 0 until prepared, in TFDS 4.9.10)",
       lambda: builder.info.download_size / 2**20 >= 0)
  need(f"{name}: builder.data_dir", lambda: str(builder.data_dir).startswith(str(root)))
  need(f"{name}: builder.download_and_prepare(download_config=)",
       lambda: "download_config" in inspect.signature(builder.download_and_prepare).parameters)


def test_the_tfds_internals_prepare_uses_are_there(tmp_path):
  """What `prepare._idx_builder` and `prepare.prepare` take from TFDS, checked by attribute and
  signature; then the subclass is built and instantiated as `prepare` does (offline)."""
  import tensorflow_datasets as tfds

  missing = []

  def need(what, check):
    try:
      ok = check()
    except Exception as e:  # noqa: BLE001  an AttributeError, ImportError, ... is the finding
      ok, what = False, f"{what} ({type(e).__name__}: {e})"
    if not ok:
      missing.append(what)

  need("tfds.builder_cls", lambda: callable(tfds.builder_cls))
  need("tfds.builder", lambda: callable(tfds.builder))
  need("tfds.download.DownloadConfig(manual_dir=...)",
       lambda: "manual_dir" in inspect.signature(tfds.download.DownloadConfig).parameters)
  need("tfds.core.SplitGenerator(name=, gen_kwargs=)",
       lambda: {"name", "gen_kwargs"} <= set(inspect.signature(tfds.core.SplitGenerator).parameters))
  need("tfds.Split.TRAIN / TEST", lambda: (tfds.Split.TRAIN, tfds.Split.TEST) == ("train", "test"))
  need("tfds.core.GeneratorBasedBuilder", lambda: inspect.isclass(tfds.core.GeneratorBasedBuilder))
  need("subclassing a registered builder with skip_registration=True", lambda: "skip_registration"
       in inspect.signature(tfds.core.registered.RegisteredDataset.__init_subclass__).parameters)
  for name in prepare.WITHOUT_TENSORFLOW:
    need(f"{name}: the builder and its subclass",
         lambda n=name: _builder_internals(tfds, n, tmp_path / n, need) or True)
  assert not missing, (
      f"ltjax/data/prepare.py relies on TFDS internals that the installed tensorflow-datasets "
      f"{importlib.metadata.version('tensorflow-datasets')} lacks: {'; '.join(missing)}. Install the "
      f"version setup.cfg pins (tensorflow-datasets{_tfds_requirement().specifier}) or update prepare.py.")
