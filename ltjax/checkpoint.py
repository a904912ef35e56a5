"""Orbax checkpoints of a run: the lineage after every completed round, and mid-round states.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a kill
during a save leaves the previous checkpoint as the latest one. Saves are synchronous: when
`save_*` returns, the checkpoint is on disk.
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Any

import orbax.checkpoint as ocp

PyTree = Any


def _manager(directory: pathlib.Path, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager(directory.absolute(), options=options, item_names=("state", "meta"))


class Checkpoints:
  """`rounds/<r>`: the lineage that starts round r; `midround/<step>`: states inside a round."""

  def __init__(self, workdir: pathlib.Path | str):
    self.root = pathlib.Path(workdir) / "checkpoints"
    self._rounds = _manager(self.root / "rounds", max_to_keep=2)
    self._mid = _manager(self.root / "midround", max_to_keep=1)

  def save_round(self, next_round: int, tree: PyTree, meta: dict) -> None:
    self._rounds.save(next_round, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                          meta=ocp.args.JsonSave(meta)), force=True)
    self._rounds.wait_until_finished()
    self.clear_midround()

  def latest_round(self, target: PyTree) -> tuple[int, PyTree, dict] | None:
    """(next round, tree, meta) of the latest round checkpoint, restored into `target`'s structure."""
    return _restore_latest(self._rounds, target)

  def save_midround(self, step: int, tree: PyTree, meta: dict) -> None:
    self._mid.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                 meta=ocp.args.JsonSave(meta)), force=True)
    self._mid.wait_until_finished()

  def latest_midround(self, target: PyTree) -> tuple[int, PyTree, dict] | None:
    return _restore_latest(self._mid, target)

  def clear_midround(self) -> None:
    for step in self._mid.all_steps():
      self._mid.delete(step)
    self._mid.wait_until_finished()

  def close(self) -> None:
    self._rounds.close()
    self._mid.close()

  @staticmethod
  def remove(workdir: pathlib.Path | str) -> None:
    shutil.rmtree(pathlib.Path(workdir) / "checkpoints", ignore_errors=True)


def _restore_latest(manager: ocp.CheckpointManager, target: PyTree):
  manager.reload()
  step = manager.latest_step()
  if step is None:
    return None
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                           meta=ocp.args.JsonRestore()))
  return step, restored["state"], restored["meta"]
