"""Data of your own: a function returning numpy arrays, ((x_train, y_train), (x_test, y_test)).

The lottery binary names it by import path (`--config.dataset=examples.data:blobs`); through the
API, pass the arrays themselves (`ltjax.run(..., dataset=blobs())`).
"""

import numpy as np


def blobs(num_train: int = 3000, num_test: int = 1000, features: int = 16, classes: int = 4,
          seed: int = 0):
  """Overlapping Gaussian clusters, one per class: learnable, but not perfectly."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(0.0, 1.0, (classes, features))

  def sample(n):
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(0.0, 1.2, (n, features))).astype(np.float32), y

  return sample(num_train), sample(num_test)
