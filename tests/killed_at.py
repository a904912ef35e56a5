"""Runs `python -m MODULE ARGS...` and SIGKILLs it at a named point of its own execution, so a
crash-safety test kills exactly there, however fast the machine (polling from outside can miss a
window that lasts milliseconds).

  python tests/killed_at.py POINT MODULE [ARGS...]

POINT `round_checkpoint_commit:R`: orbax has written every file of the checkpoint that starts
round R into its temporary directory and is about to rename it into place.
"""

import os
import runpy
import signal
import sys

from orbax.checkpoint._src.path import atomicity


def kill_before_commit(round_index: str) -> None:
  rename = atomicity.AtomicRenameTemporaryPath
  finalize = rename.finalize

  async def killing_finalize(self, *args, **kwargs):
    final = self.get_final()
    if final.parent.name == "rounds" and final.name == round_index:
      os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self, *args, **kwargs)
  rename.finalize = killing_finalize


def main():
  point, module, *argv = sys.argv[1:]
  name, _, arg = point.partition(":")
  if name != "round_checkpoint_commit" or not arg.isdigit():
    raise SystemExit(f"unknown kill point {point!r}")
  kill_before_commit(arg)
  sys.argv = [module, *argv]
  runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
