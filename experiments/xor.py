r"""The XOR experiment of the paper's first version: unit pruning of a 2-10-1 MLP, many inits.

  python -m experiments.xor                    # 1000 inits; both tables beside the paper's
  python -m experiments.xor --inits=200 --out=workdirs/xor  # also writes xor.json, xor.md

Definitions (DB, ZL), setup and strategies: see ltjax/xor.py.
"""

import json
import math
import os
import pathlib

from absl import flags

from experiments import cli
from ltjax.methods import xor

_DEFAULT = xor.XorConfig()
_INITS = flags.DEFINE_integer("inits", _DEFAULT.inits, "Random initializations per strategy/size.")
_STEPS = flags.DEFINE_integer("steps", _DEFAULT.steps, "Full-batch training steps per run.")
_SEED = flags.DEFINE_integer("seed", _DEFAULT.seed, "Seed: the same seed gives the same table.")
_LR = flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "Learning rate.")
_OPTIMIZER = flags.DEFINE_string("optimizer", _DEFAULT.optimizer, "'adam' or 'sgd'.")
_ACTIVATION = flags.DEFINE_string("activation", _DEFAULT.activation, "'relu', 'tanh' or 'sigmoid'.")
_INPUTS = flags.DEFINE_string("inputs", _DEFAULT.inputs, "'01' (x in {0,1}) or 'pm1' (x in {-1,1}).")
_ZL = flags.DEFINE_float("zl_threshold", _DEFAULT.zl_threshold,
                         "Final mean loss below this counts as 'zero loss'.")
_OUT = flags.DEFINE_string("out", None, "Directory for xor.json and xor.md (optional).")
for _name in ("inits", "steps"):
  cli.check_flag(_name, lambda v: v >= 1, f"{_name} must be >= 1")
cli.check_flag("seed", lambda v: 0 <= v < 2**32, "seed must be in [0, 2**32)")
cli.check_flag("learning_rate", lambda v: math.isfinite(v) and v > 0, "learning_rate must be a finite number > 0")
cli.check_flag("optimizer", lambda v: v in xor.OPTIMIZERS, f"optimizer must be one of {', '.join(xor.OPTIMIZERS)}")
cli.check_flag("activation", lambda v: v in xor.ACTIVATIONS, f"activation must be one of {', '.join(xor.ACTIVATIONS)}")
cli.check_flag("inputs", lambda v: v in xor.INPUTS, f"inputs must be one of {', '.join(xor.INPUTS)}")
cli.check_flag("zl_threshold", lambda v: 0 < v < math.log(2), "zl_threshold must be in (0, log 2)")
cli.check_flag("out", lambda v: v is None or (v.strip() and (os.path.isdir(v) or not os.path.exists(v))),
               "out must be a directory path (not empty, not an existing file or device)")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  cfg = xor.XorConfig(inits=_INITS.value, steps=_STEPS.value, seed=_SEED.value,
                      learning_rate=_LR.value, optimizer=_OPTIMIZER.value,
                      activation=_ACTIVATION.value, inputs=_INPUTS.value, zl_threshold=_ZL.value)
  try:
    cfg.validate()
    out = pathlib.Path(_OUT.value) if _OUT.value else None
    if out is not None:
      if out.exists() and not out.is_dir():
        raise xor.XorError(f"--out {out} exists and is not a directory")
      out.mkdir(parents=True, exist_ok=True)
    results = xor.run(cfg)
    text = (f"{results.to_markdown()}\n\nDB: all 4 points classified correctly; ZL: mean loss < "
            f"{cfg.zl_threshold:g}. {cfg.activation}, inputs {cfg.inputs}, {cfg.optimizer} lr "
            f"{cfg.learning_rate:g}, {cfg.steps} steps, seed {cfg.seed}; "
            f"wall time {results.seconds:.1f} s")
    print(text)
    if out is not None:
      (out / "xor.json").write_text(json.dumps(results.to_json(), indent=1) + "\n")
      (out / "xor.md").write_text(text + "\n")
      print(f"results: {out / 'xor.json'}, {out / 'xor.md'}")
  except (xor.XorError, OSError) as e:
    cli.fail(e)


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
