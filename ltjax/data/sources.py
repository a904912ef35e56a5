"""Your data as a checked `Dataset`: numpy or JAX arrays, or a function named by import path that
returns them. Every check fails as one line naming what is wrong (`DataError`).

The arrays are ((train_images, train_labels), (test_images, test_labels)), or a mapping with
'train' and 'test' pairs: images [N, ...] of numbers (uint8 images, or features), labels [N] of
integers in [0, num_classes). Validation is held out of the end of the training arrays, as for
TFDS data (`from_arrays`); inputs are standardized per channel (last axis) with the statistics
of the examples left for training, or (`normalization='none'`) only scaled from uint8 to [0, 1].
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ltjax import importpath
from ltjax.data.datasets import NORMALIZATIONS, Dataset, from_arrays


class DataError(ValueError):
  """Data ltjax cannot train on as given."""


def _pairs(data: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
  if isinstance(data, Mapping):
    missing = [k for k in ("train", "test") if k not in data]
    if missing:
      raise DataError(f"dataset: the mapping has no {' or '.join(map(repr, missing))} entry "
                      f"(it has {', '.join(map(repr, data))})")
    data = (data["train"], data["test"])
  if not (isinstance(data, (tuple, list)) and len(data) == 2
          and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in data)):
    raise DataError("dataset: expected ((train_images, train_labels), (test_images, test_labels)) "
                    f"or {{'train': ..., 'test': ...}}, got {type(data).__name__}")
  return data[0], data[1]


def _images(x, split: str) -> np.ndarray:
  try:
    x = np.asarray(x)
  except Exception as e:  # noqa: BLE001 -- anything array-like or not, said in one line
    raise DataError(f"dataset: {split} images are not an array: {e}") from None
  if x.ndim < 2:
    raise DataError(f"dataset: {split} images must be [examples, ...] with at least 2 axes, got "
                    f"shape {x.shape}")
  if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or x.dtype == bool:
    raise DataError(f"dataset: {split} images must be numbers, got dtype {x.dtype}")
  if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
    raise DataError(f"dataset: {split} images hold NaN or infinite values")
  if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:
    x = x.astype(np.float32)
  elif np.issubdtype(x.dtype, np.floating) and x.dtype != np.float32:
    x = x.astype(np.float32)
  return x


def _labels(y, n: int, split: str) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim != 1:
    raise DataError(f"dataset: {split} labels must be one integer per example ([N]), got shape {y.shape}")
  if not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
    raise DataError(f"dataset: {split} labels must be integers, got dtype {y.dtype}")
  if len(y) != n:
    raise DataError(f"dataset: {split} has {n} images but {len(y)} labels")
  return y.astype(np.int32)


def from_user_arrays(data: Any, name: str = "arrays", num_classes: int | None = None,
                     validation_size: int = 5000, normalization: str = "dataset") -> Dataset:
  """A `Dataset` from a user's arrays (see the module doc), every property checked first."""
  if isinstance(data, Dataset):
    return data
  if normalization not in NORMALIZATIONS:
    raise DataError(f"normalization: must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
  (x_train, y_train), (x_test, y_test) = _pairs(data)
  x_train, x_test = _images(x_train, "train"), _images(x_test, "test")
  y_train = _labels(y_train, len(x_train), "train")
  y_test = _labels(y_test, len(x_test), "test")
  if x_train.shape[1:] != x_test.shape[1:]:
    raise DataError(f"dataset: train examples have shape {x_train.shape[1:]}, test examples "
                    f"{x_test.shape[1:]}")
  if len(x_test) == 0:
    raise DataError("dataset: the test split is empty")
  found = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
  if num_classes is None:
    num_classes = found
  elif not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
    raise DataError(f"num_classes: must be an integer >= 2, got {num_classes!r}")
  for split, y in (("train", y_train), ("test", y_test)):
    if y.size and (y.min() < 0 or y.max() >= num_classes):
      raise DataError(f"dataset: {split} labels must be in [0, {num_classes}), got "
                      f"[{y.min()}, {y.max()}]")
  if num_classes < 2:
    raise DataError(f"dataset: the labels hold {num_classes} class; a classifier needs at least 2")
  if not 0 <= validation_size < len(y_train):
    raise DataError(f"validation_size: must leave training examples, so be in [0, {len(y_train)}) "
                    f"for {len(y_train)} training examples; got {validation_size}")
  return from_arrays(name, (x_train, y_train), (x_test, y_test), num_classes=num_classes,
                     validation_size=validation_size, normalization=normalization)


def from_import(path: str, validation_size: int = 5000, normalization: str = "dataset",
                kwargs: Mapping[str, Any] | None = None) -> Dataset:
  """The arrays `package.module:function` returns (called with `kwargs`), checked."""
  parts = importpath.split(path)
  if parts is None:
    raise DataError(f"dataset: {path!r} is neither a dataset name nor package.module:function")
  try:
    fn = importpath.resolve(*parts)
  except importpath.ImportPathError as e:
    raise DataError(f"dataset: {e}") from None
  if not callable(fn):
    raise DataError(f"dataset: {path!r} is not callable")
  try:
    data = fn(**dict(kwargs or {}))
  except Exception as e:  # noqa: BLE001
    raise DataError(f"dataset: {path}() failed: {type(e).__name__}: {e}") from None
  return from_user_arrays(data, name=path, validation_size=validation_size,
                          normalization=normalization)
