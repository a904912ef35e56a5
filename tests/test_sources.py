"""Your data as a Dataset: arrays checked field by field, each problem one line naming it."""

import numpy as np
import pytest

from ltjax import data


def _arrays(n=50, m=20, shape=(6,), classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return ((rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, classes, n)),
          (rng.normal(size=(m, *shape)).astype(np.float32), rng.integers(0, classes, m)))


def test_arrays_become_a_standardized_dataset_with_a_held_out_tail():
  (x, y), (xt, yt) = _arrays()
  ds = data.from_user_arrays(((x, y), (xt, yt)), validation_size=10)
  assert (len(ds.train), len(ds.val), len(ds.test), ds.num_classes) == (40, 10, 20, 3)
  np.testing.assert_array_equal(np.asarray(ds.val.labels), y[40:])
  assert abs(float(np.asarray(ds.normalize(ds.train.images)).mean())) < 1e-5
  same = data.from_user_arrays({"train": (x, y), "test": (xt, yt)}, validation_size=10, num_classes=5)
  assert same.num_classes == 5 and same.input_shape == (6,)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: (d[0],), "expected \\(\\(train_images"),
    (lambda d: ((d[0][0][:, 0], d[0][1]), d[1]), "train images must be \\[examples, ...\\]"),
    (lambda d: ((d[0][0].astype(str), d[0][1]), d[1]), "train images must be numbers"),
    (lambda d: ((np.where(d[0][0] > 1, np.nan, d[0][0]), d[0][1]), d[1]), "NaN or infinite"),
    (lambda d: ((d[0][0], d[0][1][:-1]), d[1]), "train has 50 images but 49 labels"),
    (lambda d: ((d[0][0], d[0][1].astype(np.float32)), d[1]), "train labels must be integers"),
    (lambda d: ((d[0][0], d[0][1].reshape(-1, 1)), d[1]), "one integer per example"),
    (lambda d: (d[0], (d[1][0][:, :3], d[1][1])), "test examples \\(3,\\)"),
    (lambda d: ((d[0][0], d[0][1] - 1), d[1]), "train labels must be in \\[0, 3\\)"),
    (lambda d: (d[0], (d[1][0], d[1][1] * 0)), None),
])
def test_each_bad_property_is_named(mutate, message):
  bad = mutate(_arrays())
  if message is None:
    data.from_user_arrays(bad, validation_size=10)
    return
  with pytest.raises(data.DataError, match=message) as e:
    data.from_user_arrays(bad, validation_size=10)
  assert "\n" not in str(e.value)


def test_class_count_and_split_sizes_are_checked():
  arrays = _arrays()
  with pytest.raises(data.DataError, match="labels must be in \\[0, 2\\)"):
    data.from_user_arrays(arrays, num_classes=2, validation_size=10)
  with pytest.raises(data.DataError, match="validation_size"):
    data.from_user_arrays(arrays, validation_size=50)
  (x, y), test = arrays
  with pytest.raises(data.DataError, match="needs at least 2"):
    data.from_user_arrays(((x, y * 0), (test[0], test[1] * 0)), validation_size=10)


def test_an_import_path_gives_arrays_or_one_line():
  ds = data.from_import("examples.data:blobs", validation_size=100)
  assert ds.num_classes == 4 and ds.input_shape == (16,)
  for path, message in [("examples.data", "neither a dataset name"),
                        ("examples.nowhere:f", "cannot import"),
                        ("examples.data:nope", "has no attribute"),
                        ("examples.networks:SmallCNN", "failed")]:
    with pytest.raises(data.DataError, match=message):
      data.from_import(path)
