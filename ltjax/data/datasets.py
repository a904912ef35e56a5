"""Device-resident datasets: whole splits live on the device and batches are gathered by index.

A `Dataset` is a pytree (arrays are leaves, metadata is static) so it is passed *into* compiled
functions as an argument rather than baked into them as constants.

Real datasets come from TFDS directories prepared on disk (`prepare`, or the
`experiments.prepare_data` binary, which needs TensorFlow) and are read without TensorFlow by
`load`, which checks for the prepared files first so that a missing dataset fails at once instead
of TFDS trying the network, and caches the decoded arrays as a .npz so that later loads are fast.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import zipfile
from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from ltjax import files

DATA_DIR_ENV = "LTJAX_DATA_DIR"
# Bump when the cache's layout or decoding changes: it is part of every cache fingerprint.
CACHE_FORMAT_VERSION = 1
_DECODE_CHUNK = 10_000  # examples per data_source.__getitems__ call
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
NORMALIZATIONS = ("dataset", "none")


class DatasetNotFoundError(ValueError):
  """A dataset is not prepared under the data dir; the message says how to prepare it."""


@flax.struct.dataclass
class Split:
  images: jax.Array  # [N, ...]; uint8 for image data (normalized on the fly), float otherwise
  labels: jax.Array  # [N] int32

  def __len__(self) -> int:
    return int(self.labels.shape[0])


@flax.struct.dataclass
class Dataset:
  train: Split
  val: Split
  test: Split
  name: str = flax.struct.field(pytree_node=False, default="")
  num_classes: int = flax.struct.field(pytree_node=False, default=10)
  # Per-channel statistics in the stored images' units (0..255 for uint8 images).
  mean: tuple[float, ...] = flax.struct.field(pytree_node=False, default=(0.0,))
  std: tuple[float, ...] = flax.struct.field(pytree_node=False, default=(1.0,))

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.train.images.shape[1:])

  def normalize(self, images: jax.Array) -> jax.Array:
    """Stored images -> float32 network inputs, standardized per channel."""
    mean = jnp.asarray(self.mean, jnp.float32)
    std = jnp.asarray(self.std, jnp.float32)
    return (images.astype(jnp.float32) - mean) / std


def from_arrays(name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                num_classes: int, validation_size: int, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None, normalization: str = "dataset") -> Dataset:
  """Holds out the *last* `validation_size` training examples as validation; moves all to device.

  The hold-out is a fixed slice (not a shuffle) so that it is the same on every run and platform;
  TFDS training splits are already in random order. Mean/std default to `normalization_stats`
  over the examples that remain for training.
  """
  x_train, y_train = train
  if not 0 <= validation_size < len(y_train):
    raise ValueError(f"validation_size must be in [0, {len(y_train)}), got {validation_size}")
  n_fit = len(y_train) - validation_size
  if mean is None or std is None:
    mean, std = normalization_stats(x_train[:n_fit], normalization)

  def split(x, y):
    return Split(images=jnp.asarray(x), labels=jnp.asarray(y, jnp.int32))

  return Dataset(train=split(x_train[:n_fit], y_train[:n_fit]),
                 val=split(x_train[n_fit:], y_train[n_fit:]),
                 test=split(*test), name=name, num_classes=num_classes,
                 mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))


def synthetic(seed: int = 0, num_train: int = 2_000, num_test: int = 500, validation_size: int = 500,
              shape: tuple[int, ...] = (8, 8, 1), num_classes: int = 10) -> Dataset:
  """A learnable generated image task (class templates plus noise), for tests and offline demos.

  Each class has a fixed random uint8 template; examples are the template plus clipped Gaussian
  noise, so a linear model separates the classes well but not perfectly.
  """
  rng = np.random.default_rng(seed)
  templates = rng.uniform(0, 255, size=(num_classes, *shape))

  def sample(n):
    labels = rng.integers(0, num_classes, size=n)
    noise = rng.normal(0, 80, size=(n, *shape))
    images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int32)

  return from_arrays(f"synthetic{shape}", sample(num_train + validation_size), sample(num_test),
                     num_classes=num_classes, validation_size=validation_size)


def normalization_stats(train_images: np.ndarray, normalization: str
                        ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel (mean, std) that `normalization` divides by, from the images left for training:
  'dataset' standardizes with their statistics; 'none' only scales to [0, 1] (uint8 by 255)."""
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
  if normalization == "none":
    channels = train_images.shape[-1] if train_images.ndim > 1 else 1
    scale = 255.0 if train_images.dtype == np.uint8 else 1.0
    return (0.0,) * channels, (scale,) * channels
  return channel_stats(train_images)


def channel_stats(images: np.ndarray, chunk: int = 1 << 20) -> tuple[tuple[float, ...],
                                                                       tuple[float, ...]]:
  """Per-channel (last axis) mean and std of `images`, in their own units.

  Streams over chunks of rows with a pairwise (Chan et al.) update, so a uint8 CIFAR-10 train set
  never materializes as float64 (1.1 GB) and the result is still exact to float64 rounding.
  Std is floored at 1e-8 so constant channels do not divide by zero.
  """
  flat = images.reshape(-1, images.shape[-1] if images.ndim > 1 else 1)
  count, mean, m2 = 0, np.zeros(flat.shape[1]), np.zeros(flat.shape[1])
  for start in range(0, flat.shape[0], chunk):
    block = flat[start:start + chunk].astype(np.float64)
    k, block_mean = block.shape[0], block.mean(axis=0)
    delta, total = block_mean - mean, count + k
    m2 += ((block - block_mean) ** 2).sum(axis=0) + delta ** 2 * count * k / total
    mean += delta * k / total
    count = total
  std = np.maximum(np.sqrt(m2 / max(count, 1)), 1e-8)
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The TFDS data dir: explicit `data_dir`, else $LTJAX_DATA_DIR, else ~/tensorflow_datasets."""
  if data_dir is None or str(data_dir) == "":
    data_dir = os.environ.get(DATA_DIR_ENV) or "~/tensorflow_datasets"
  return pathlib.Path(data_dir).expanduser()


def is_versioned(name: str) -> bool:
  """'mnist:3.0.1' names a TFDS dataset at a version, not a 'package.module:function' loader."""
  base, sep, version = name.partition(":")
  return bool(base and sep and _VERSION_RE.match(version))


def _parse_name(name: str) -> tuple[str, str | None]:
  """'mnist' -> ('mnist', None); 'mnist:3.0.1' -> ('mnist', '3.0.1'); 'a/config' passes through."""
  base, _, version = name.partition(":")
  if not base or (version and not _VERSION_RE.match(version)):
    raise ValueError(f"expected a TFDS name like 'mnist' or 'mnist:3.0.1', got {name!r}")
  return base, version or None


def _prepare_hint(base: str, data_dir: pathlib.Path) -> str:
  return (f"prepare it with `python -m experiments.prepare_data --dataset={base} "
          f"--data_dir={data_dir}` (or let a run prepare it)")


def prepared_dir(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The prepared `<data_dir>/<name>/<version>/` directory, found with plain file-system checks.

  TFDS itself, asked for a dataset that is not on disk, goes to the network (and offline retries
  for minutes), so `load` calls this first. Without a version in `name` it picks the newest
  version directory that holds a dataset_info.json.

  Raises:
    DatasetNotFoundError: nothing prepared there; the one-line message names the directory
      searched and the command that prepares it.
  """
  base, version = _parse_name(name)
  data_dir = resolve_data_dir(data_dir)
  dataset_dir = data_dir / base
  try:
    candidates = [d for d in dataset_dir.iterdir()
                  if _VERSION_RE.match(d.name) and (d / "dataset_info.json").is_file()]
  except OSError:  # missing or unreadable dataset dir
    candidates = []
  if version is not None:
    candidates = [d for d in candidates if d.name == version]
  if not candidates:
    wanted = f"{dataset_dir}/{version or '<version>'}/dataset_info.json"
    raise DatasetNotFoundError(f"Dataset {name!r} is not prepared in data_dir {data_dir} "
                               f"(no {wanted}); {_prepare_hint(base, data_dir)}")
  return max(candidates, key=lambda d: tuple(int(p) for p in d.name.split(".")))


def source_fingerprint(version_dir: str | os.PathLike) -> str:
  """A hash that changes whenever the prepared files (or the cache format) change.

  Covers the name, size and mtime of every file in the version dir (the split shards among them),
  the content of dataset_info.json and `CACHE_FORMAT_VERSION`; re-preparing a dataset therefore
  invalidates its decoded cache without reading the (large) shards themselves.
  """
  version_dir = pathlib.Path(version_dir)
  h = hashlib.sha256(f"ltjax-cache-v{CACHE_FORMAT_VERSION}\n".encode())
  for entry in sorted(os.scandir(version_dir), key=lambda e: e.name):
    if entry.is_file():
      st = entry.stat()
      h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  h.update((version_dir / "dataset_info.json").read_bytes())
  return h.hexdigest()


def _writable(path: pathlib.Path) -> bool:
  """Whether we may write in `path`: permitted *and* not marked read-only (no write bit at all).

  The second test matters for root, whom `os.access` always allows: a dataset dir deliberately
  made read-only (e.g. a shared copy) must not grow a cache.
  """
  try:
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)
  except OSError:
    return False


def _default_cache_dir(version_dir: pathlib.Path) -> pathlib.Path:
  """`<version_dir>/ltjax_cache/` where writable, else a per-source dir under ~/.cache/ltjax."""
  local = version_dir / "ltjax_cache"
  if _writable(local) or (not local.exists() and _writable(version_dir)):
    return local
  # Read-only data (e.g. a shared mount): one subdir per source dir so two copies don't collide.
  key = hashlib.sha256(str(version_dir.resolve()).encode()).hexdigest()[:16]
  return files.cache_dir(key)


_CACHE_KEYS = ("train_images", "train_labels", "test_images", "test_labels", "num_classes")


def _read_cache(path: pathlib.Path, fingerprint: str) -> dict[str, np.ndarray] | None:
  """The cached arrays if `path` holds a complete cache for `fingerprint`, else None."""
  try:
    with np.load(path, allow_pickle=False) as f:
      if str(f["fingerprint"]) != fingerprint:
        logging.info("ltjax data cache %s is stale; decoding again", path)
        return None
      arrays = {k: f[k] for k in _CACHE_KEYS}
  except FileNotFoundError:
    return None
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    logging.warning("ignoring unreadable ltjax data cache %s (%s); decoding again", path, e)
    return None
  ok = (arrays["train_images"].dtype == np.uint8 and arrays["test_images"].dtype == np.uint8
        and len(arrays["train_images"]) == len(arrays["train_labels"])
        and len(arrays["test_images"]) == len(arrays["test_labels"]))
  if not ok:
    logging.warning("ignoring inconsistent ltjax data cache %s; decoding again", path)
    return None
  return arrays


def _write_cache(path: pathlib.Path, arrays: dict[str, np.ndarray], fingerprint: str) -> None:
  """Writes the cache atomically (`files.write_atomic`); failures only warn.

  Readers thus see either the old file or the complete new one, even with concurrent loads.
  """
  try:
    # 0o644 whatever the umask: a cache is as readable as the data it was decoded from.
    files.write_atomic(path, lambda f: np.savez(f, fingerprint=np.asarray(fingerprint), **arrays),
                       mode=0o644)
  except OSError as e:
    logging.warning("could not write ltjax data cache %s (%s); continuing without it", path, e)


def _read_split(source: Any) -> tuple[np.ndarray, np.ndarray]:
  """All (image, label) pairs of a TFDS data source, stacked into uint8 / int32 arrays.

  Reads in chunks through `__getitems__` (one batched array_record read per chunk), falling back
  to item-by-item reads where the source has no working batched read.
  """
  n = len(source)
  images = labels = None
  batched = hasattr(source, "__getitems__")
  for start in range(0, n, _DECODE_CHUNK):
    keys = list(range(start, min(n, start + _DECODE_CHUNK)))
    items = None
    if batched:
      try:
        items = source.__getitems__(keys)
      except (AttributeError, TypeError, NotImplementedError) as e:
        if start:  # It worked before, so this is a real error.
          raise
        logging.info("batched reads unavailable (%s); reading items one by one", e)
        batched = False
    if items is None:
      items = [source[k] for k in keys]
    if images is None:
      first = np.asarray(items[0]["image"])
      images = np.empty((n, *first.shape), np.uint8)
      labels = np.empty((n,), np.int32)
    images[start:start + len(keys)] = np.stack([np.asarray(it["image"]) for it in items])
    labels[start:start + len(keys)] = [int(it["label"]) for it in items]
  if images is None:
    raise ValueError("empty split")
  return images, labels


def _decode_splits(name: str, data_dir: pathlib.Path) -> dict[str, np.ndarray]:
  """Decodes the train and test splits of prepared dataset `name` ('mnist:3.0.1') via TFDS."""
  import tensorflow_datasets as tfds  # Imported here: it is slow and only needed on a cache miss.

  arrays = {}
  for split in ("train", "test"):
    source = tfds.data_source(name, split=split, data_dir=str(data_dir), download=False)
    features = source.dataset_info.features
    if "image" not in features or "label" not in features:
      raise ValueError(f"{name} is not an image-classification dataset: features are "
                       f"{list(features.keys())}, need 'image' and 'label'")
    if features["image"].np_dtype != np.uint8:
      raise ValueError(f"{name}: expected uint8 images, got {features['image'].np_dtype}")
    arrays[f"{split}_images"], arrays[f"{split}_labels"] = _read_split(source)
    arrays["num_classes"] = np.asarray(features["label"].num_classes, np.int64)
  return arrays


def load(name: str, data_dir: str | os.PathLike | None = None, validation_size: int = 5000,
         normalization: str = "dataset", cache_dir: str | os.PathLike | None = None) -> Dataset:
  """Loads a prepared TFDS image-classification dataset (mnist, fashion_mnist, cifar10, ...).

  Any dataset with an 'image' (uint8) and a 'label' (ClassLabel) feature and train/test splits
  works. Validation is the *last* `validation_size` examples of the train split (see
  `from_arrays`): TFDS stores the train split already shuffled, so this fixed slice is a random
  hold-out that is identical on every run and machine. The test split is used untouched.
  Images stay uint8 on the device (4x less memory than float32); `Dataset.normalize` turns them
  into network inputs.

  Args:
    name: TFDS name, optionally with a version ('mnist:3.0.1'); else the newest prepared one.
    data_dir: see `resolve_data_dir`.
    validation_size: train examples held out for validation.
    normalization: 'dataset' (default) standardizes each channel with the mean/std of the
      examples left for training (not validation), the usual practice for these benchmarks
      (e.g. MNIST ~(33.3, 78.6)); it centres the inputs, which keeps early training
      well conditioned, and keeps validation unseen. 'none' only scales to [0, 1] (mean 0,
      std 255), for comparisons with code that does no standardization. Either way the stats
      are stored in raw 0..255 units in `Dataset.mean`/`std`.
    cache_dir: where the decoded arrays are cached; default `<version_dir>/ltjax_cache/` if
      writable, else ~/.cache/ltjax/<hash of the version dir>/. The cache holds the raw decoded
      splits, so changing `validation_size` or `normalization` never decodes again; it is
      rebuilt when the prepared files change (see `source_fingerprint`) or it is unreadable.

  Raises:
    DatasetNotFoundError: the dataset is not prepared under the data dir (raised at once).
    ValueError: bad arguments, or the dataset is not image classification.
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
  data_dir = resolve_data_dir(data_dir)
  version_dir = prepared_dir(name, data_dir)
  base, version = _parse_name(name)[0], version_dir.name
  fingerprint = source_fingerprint(version_dir)
  cache_dir = (pathlib.Path(cache_dir).expanduser() if cache_dir is not None
               else _default_cache_dir(version_dir))
  cache_path = cache_dir / f"{base.replace('/', '__')}-{version}.npz"
  arrays = _read_cache(cache_path, fingerprint)
  if arrays is None:
    arrays = _decode_splits(f"{base}:{version}", data_dir)
    _write_cache(cache_path, arrays, fingerprint)
  train = (arrays["train_images"], arrays["train_labels"])
  test = (arrays["test_images"], arrays["test_labels"])
  return from_arrays(base, train, test, num_classes=int(arrays["num_classes"]),
                     validation_size=validation_size, normalization=normalization)
