"""Datasets: device-resident splits from arrays (yours), prepared TFDS data, or a loader you name.

`datasets` holds the `Dataset` pytree and the TFDS reader; `sources` turns what a user brings
(arrays, an import path) into a checked `Dataset`; `prepare` writes a TFDS dataset the first time.
"""

from ltjax.data.datasets import (
                                 DATA_DIR_ENV,
                                 NORMALIZATIONS,
                                 Dataset,
                                 DatasetNotFoundError,
                                 Split,
                                 channel_stats,
                                 from_arrays,
                                 is_versioned,
                                 load,
                                 normalization_stats,
                                 prepared_dir,
                                 resolve_data_dir,
                                 source_fingerprint,
                                 synthetic,
)
from ltjax.data.sources import DataError, from_import, from_user_arrays

__all__ = ["DATA_DIR_ENV", "NORMALIZATIONS", "DataError", "Dataset", "DatasetNotFoundError", "Split",
           "channel_stats", "from_arrays", "from_import", "from_user_arrays", "is_versioned", "load",
           "normalization_stats", "prepared_dir", "resolve_data_dir", "source_fingerprint", "synthetic"]
