r"""Prepares a TFDS dataset on disk (array_record) so that `ltjax.data.load` can read it.

Preparing needs TensorFlow (`pip install -e '.[tf]'`); reading afterwards does not. Offline, point
--manual_dir at the original files (e.g. MNIST's four .gz files):

  python -m experiments.prepare_data --dataset=mnist --data_dir=~/tensorflow_datasets \
      --manual_dir=/path/to/raw/mnist

Errors (TensorFlow missing, unknown dataset, bad paths) print one line and exit with status 1;
bad flags exit with status 2.
"""

import sys

from absl import app
from absl import flags

from ltjax import data

_DATASET = flags.DEFINE_string("dataset", None, "TFDS name, e.g. mnist, fashion_mnist, cifar10.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, f"Output dir; default ${data.DATA_DIR_ENV} else ~/tensorflow_datasets.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Directory with the original files, to prepare without downloading.")

_PROG = "prepare_data"


def _fail(message: str, status: int = 1):
  """Prints the first line of `message` as a one-line error and exits, without a traceback."""
  lines = [line.strip() for line in str(message).splitlines() if line.strip()]
  sys.stderr.write(f"{_PROG}: error: {lines[0] if lines else 'unknown error'}\n")
  sys.exit(status)


def _parse_flags(argv):
  """absl's flag parsing, but a bad flag is a one-line error rather than absl's multi-line one."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(str(e), status=2)


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}", status=2)
  if not _DATASET.value:
    _fail("--dataset is required (e.g. --dataset=mnist)", status=2)
  try:
    path = data.prepare(_DATASET.value, _DATA_DIR.value, _MANUAL_DIR.value)
  except (ImportError, ValueError, OSError) as e:  # tfds' DatasetNotFoundError is a ValueError.
    _fail(str(e))
  print(f"prepared {_DATASET.value} in {path}")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
