r"""Your own flax network on your own numpy arrays: a lottery-ticket run with its controls.

  python examples/own_network.py --workdir=/tmp/ltjax_own_network

Trains `trials` tickets of a two-layer MLP (examples/networks.py) on arrays (examples/data.py)
beside a random reinitialization and a random mask of each, prunes them for a few rounds, and
writes the same workdir as the lottery binary: records, curves, masks, TensorBoard, checkpoints
(rerunning resumes) and a report.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E402

from absl import app, flags

import ltjax
from examples import data, networks

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ltjax_own_network", "Where the run writes.")
_STEPS = flags.DEFINE_integer("steps", 1500, "Training steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 4, "Pruning rounds after the dense round 0.")
_TRIALS = flags.DEFINE_integer("trials", 3, "Independent seeds.")


def main(argv):
  del argv
  cfg = ltjax.config("lenet_quick", {  # the preset's schedule, shortened; the data are yours
      "trials": _TRIALS.value, "prune.rounds": _ROUNDS.value, "train.steps": _STEPS.value,
      "train.eval_every": min(50, _STEPS.value), "train.batch_size": 60, "validation_size": 500})
  try:
    records = ltjax.run(cfg, _WORKDIR.value, model=networks.TwoLayerMLP(num_classes=4),
                        dataset=data.blobs())
  except ltjax.UsageError as e:
    sys.exit(f"error: {e}")
  ltjax.report([_WORKDIR.value], os.path.join(_WORKDIR.value, "report"))
  last = max(r["round"] for r in records)
  for r in records:
    if r["round"] == last:
      print(f"{r['kind']:12s} trial {r['trial']}  density {r['density']:.3f}  "
            f"test accuracy {r['test_accuracy']:.3f}")


if __name__ == "__main__":
  app.run(main)
