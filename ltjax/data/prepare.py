"""Prepares a TFDS dataset on disk the first time it is needed, without TensorFlow where it can.

TFDS writes datasets with TensorFlow (file reads, PNG encoding); for the MNIST family the only
TensorFlow-bound steps are gunzipping the IDX files and encoding PNGs, so `prepare` runs TFDS's
own builder with those two steps replaced (gzip + PIL): same download URLs and checksums, same
example keys, hence the same shuffled order, the same `array_record` layout and
`dataset_info.json` as TFDS's own preparation (tests compare the decoded arrays with an official
copy). Other datasets go through TFDS unchanged and need TensorFlow (`pip install -e '.[tf]'`).

Offline, nothing waits for the network: with `manual_dir` holding the original files (e.g.
MNIST's four .gz files) nothing is downloaded; otherwise the download host is probed for a
second and an unreachable one is a one-line `DatasetNotFoundError`. `LTJAX_OFFLINE=1` skips the
probe (the test suite sets it: tests never touch the network).
"""

from __future__ import annotations

import gzip
import io
import os
import pathlib
import socket
import threading
import urllib.parse
from typing import Callable

import numpy as np

from ltjax.data import datasets

OFFLINE_ENV = "LTJAX_OFFLINE"
MANUAL_DIR_ENV = "LTJAX_MANUAL_DIR"
_IDX_FILES = {"train_data": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
              "test_data": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
WITHOUT_TENSORFLOW = ("mnist", "fashion_mnist")  # TFDS builders whose files are MNIST's IDX format


def prepare(name: str, data_dir: str | os.PathLike | None = None,
            manual_dir: str | os.PathLike | None = None,
            log: Callable[[str], None] = print) -> pathlib.Path:
  """Downloads (or reads from `manual_dir`) and prepares `name` as array_record; returns its dir.

  Raises:
    datasets.DatasetNotFoundError: unknown dataset, or the files cannot be had (offline).
    ValueError: a bad `manual_dir`.
    ImportError: the dataset needs TensorFlow to prepare and it is not installed.
  """
  base, version = datasets._parse_name(name)  # pylint: disable=protected-access
  builder_name = base.split("/")[0]
  manual = None if manual_dir is None else pathlib.Path(manual_dir).expanduser()
  if manual is not None and not manual.is_dir():
    raise ValueError(f"manual_dir {manual_dir} is not a directory")
  data_dir = datasets.resolve_data_dir(data_dir)
  needs_download = manual is None or not all((manual / f).is_file() for f in _IDX_FILES.values())
  probe = None
  if builder_name in _HOSTS and needs_download:  # probe while TFDS imports: an offline run ends fast
    probe = _Probe(name, data_dir, _HOSTS[builder_name])
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    cls = tfds.builder_cls(builder_name)  # unknown names fail here, offline and at once
  except Exception as e:  # tfds raises its own DatasetNotFoundError (a ValueError) and others
    raise datasets.DatasetNotFoundError(f"dataset: unknown TFDS dataset {builder_name!r} "
                                    f"({str(e).splitlines()[0]})") from None
  preparable = [str(v) for v in (cls.VERSION, *getattr(cls, "SUPPORTED_VERSIONS", ())) if v]
  if version and version not in preparable:  # TFDS prepares the versions its builder has, no other
    raise datasets.DatasetNotFoundError(f"dataset: {name!r} is not prepared in data_dir {data_dir}, and TFDS "
                                        f"can prepare {builder_name} at {', '.join(preparable)} only")
  if builder_name in WITHOUT_TENSORFLOW:
    builder = _idx_builder(cls)(data_dir=str(data_dir), file_format="array_record")
    host = urllib.parse.urlparse(cls.URL).hostname
    if needs_download:
      (probe if probe is not None and probe.host == host else _Probe(name, data_dir, host)).check()
      log(f"downloading {builder_name} ({builder.info.download_size / 2**20:.1f} MiB) from {host} "
          f"into {data_dir} (once: later runs read it from there)")
    else:
      log(f"preparing {builder_name} from the files in {manual} into {data_dir}")
  else:
    try:
      import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError as e:
      raise ImportError(f"preparing {builder_name} needs TensorFlow, which is not importable ({e}); "
                        "install it with pip install -e '.[tf]'") from e
    builder = tfds.builder(name, data_dir=str(data_dir), file_format="array_record")
  config = tfds.download.DownloadConfig(manual_dir=None if manual is None else str(manual))
  builder.download_and_prepare(download_config=config)
  return pathlib.Path(str(builder.data_dir))


def _idx_builder(cls):
  """TFDS's MNIST-family builder with its two TensorFlow-bound steps done by gzip and PIL."""
  import tensorflow_datasets as tfds
  from PIL import Image

  class WithoutTensorFlow(cls, skip_registration=True):
    __module__ = cls.__module__  # dataset_info.json names TFDS's module, as TFDS would
    name = cls.name
    url_infos = cls.url_infos  # the parent's registered checksums

    def _split_generators(self, dl_manager):
      paths = dl_manager.download({k: urllib.parse.urljoin(self.URL, v) for k, v in _IDX_FILES.items()})
      return [tfds.core.SplitGenerator(name=split, gen_kwargs=dict(
          images_path=paths[f"{prefix}_data"], labels_path=paths[f"{prefix}_labels"]))
              for split, prefix in ((tfds.Split.TRAIN, "train"), (tfds.Split.TEST, "test"))]

    def _generate_examples(self, images_path, labels_path):
      images, labels = read_idx(images_path), read_idx(labels_path)
      for index, (image, label) in enumerate(zip(images, labels)):  # TFDS's keys: the index
        png = io.BytesIO()
        Image.fromarray(image).save(png, format="PNG")
        png.seek(0)
        yield index, {"image": png, "label": int(label)}

  return WithoutTensorFlow


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """An IDX file (gzipped or not) as a uint8 array: images [n, rows, cols], labels [n]."""
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if raw[:2] != b"\0\0" or raw[2] != 0x08:
    raise ValueError(f"{path} is not an IDX file of unsigned bytes")
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


# Download hosts of the builders prepared here, to probe before TFDS is even imported.
_HOSTS = {"mnist": "storage.googleapis.com",
          "fashion_mnist": "fashion-mnist.s3-website.eu-central-1.amazonaws.com"}


class _Probe:
  """Tries a connection to `host` in the background; `check()` waits for it (at most `timeout`)."""

  def __init__(self, name: str, data_dir: pathlib.Path, host: str, timeout: float = 1.0):
    self.name, self.data_dir, self.host, self.timeout = name, data_dir, host, timeout
    self.offline = os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    self._ok: list[bool] = []
    self._thread = None
    if not self.offline:
      self._thread = threading.Thread(target=self._run, daemon=True)
      self._thread.start()

  def _run(self):
    try:
      socket.create_connection((self.host, 443), timeout=self.timeout).close()
      self._ok.append(True)
    except OSError:
      pass

  def check(self) -> None:
    hint = (f"dataset {self.name!r} is not prepared in data_dir {self.data_dir} and cannot be downloaded now "
            f"({{why}}); connect and rerun, or set ${datasets.DATA_DIR_ENV} to a dir holding it, or "
            f"${MANUAL_DIR_ENV} to a dir holding its original files")
    if self.offline:
      raise datasets.DatasetNotFoundError(hint.format(why=f"${OFFLINE_ENV} is set"))
    self._thread.join(self.timeout)
    if not self._ok:
      raise datasets.DatasetNotFoundError(hint.format(why=f"no connection to {self.host}"))
