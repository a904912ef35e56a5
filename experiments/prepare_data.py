r"""Prepares a TFDS dataset on disk (array_record) so that `ltjax.data.load` can read it.

MNIST and Fashion-MNIST are prepared without TensorFlow; other datasets need it
(`pip install -e '.[tf]'`). Reading never does. Offline, point --manual_dir at the original files
(e.g. MNIST's four .gz files):

  python -m experiments.prepare_data --dataset=mnist --data_dir=~/tensorflow_datasets \
      --manual_dir=/path/to/raw/mnist

Errors (TensorFlow missing, unknown dataset, bad paths) print one line and exit with status 1;
bad flags too.
"""


from absl import flags

from experiments import cli
from ltjax import data
from ltjax.data import prepare

_DATASET = flags.DEFINE_string("dataset", None, "TFDS name, e.g. mnist, fashion_mnist, cifar10.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, f"Output dir; default ${data.DATA_DIR_ENV} else ~/tensorflow_datasets.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Directory with the original files, to prepare without downloading.")



def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _DATASET.value:
    cli.fail("--dataset is required (e.g. --dataset=mnist)")
  try:
    path = prepare.prepare(_DATASET.value, _DATA_DIR.value, _MANUAL_DIR.value)
  except (ImportError, ValueError, OSError) as e:  # tfds' DatasetNotFoundError is a ValueError.
    cli.fail(str(e))
  print(f"prepared {_DATASET.value} in {path}")


if __name__ == "__main__":
  cli.run(main)
