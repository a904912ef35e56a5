r"""Your own pruning score against the paper's magnitude score, each with every control.

  python examples/own_score.py --workdir=/tmp/ltjax_own_score

Runs IMP on LeNet-300-100/MNIST with the score examples/scores.py registers and with magnitude,
the random-reinit and random-mask controls beside each, and draws one report that overlays both.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E402

from absl import app, flags

import ltjax
from examples import scores  # noqa: F401 -- registers the score 'large_and_moved'

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ltjax_own_score", "Root of the two runs.")
_STEPS = flags.DEFINE_integer("steps", 2000, "Training steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 4, "Pruning rounds after the dense round 0.")
_TRIALS = flags.DEFINE_integer("trials", 3, "Independent seeds.")


def main(argv):
  del argv
  workdirs = []
  for score in ("magnitude", "large_and_moved"):
    cfg = ltjax.config("lenet_quick", {
        "name": f"lenet_{score}", "prune.score": score, "trials": _TRIALS.value,
        "prune.rounds": _ROUNDS.value, "train.steps": _STEPS.value, "train.eval_every": min(100, _STEPS.value),
        "controls": ("reinit", "random_mask")})
    workdirs.append(os.path.join(_WORKDIR.value, score))
    try:
      ltjax.run(cfg, workdirs[-1])
    except ltjax.UsageError as e:
      sys.exit(f"error: {e}")
  out = ltjax.report(workdirs, os.path.join(_WORKDIR.value, "report"))
  print(f"report: {out}")


if __name__ == "__main__":
  app.run(main)
