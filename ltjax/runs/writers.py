"""What a run writes while it trains: small writers behind the sink protocol, and the workdir's.

The sink protocol (`lottery.RoundSink`) is how `lottery.run_rounds` reports; write your own sink
by subclassing `Sink` (every method a no-op) and overriding what you need:

  progress(round_index, step, snapshot, curves)
      After every compiled call of a round. `step` counts from 0 in each round; `curves` is the
      round's `train.Curves` so far, arrays [num_evals, K] whose column k is the ticket
      `lineup.lineup(cfg, round_index)[k]` (rows only grow; `curves.step` says which are new).
      `snapshot()` returns (train states, early-stop tracker) for a mid-round checkpoint; it
      gathers them from the ticket groups, so call it only when you save.
  round_done(result, lineage)
      Once per finished round, with its `lottery.RoundResult` (host numpy) and the `Lineage` the
      next round starts from: persist both to make the run resumable.
  close()
      When the run ends, even by an error (`train_and_evaluate` calls it; `run_rounds` does not).

Run yours with `lottery.run_rounds(setup, dataset, sink)`, or beside the workdir's writers as
`FanOut(WorkdirSink(...), YourSink())`.

`WorkdirSink` is what `experiment.train_and_evaluate` uses: the writers below, called in this
order for every report, so that each round's files are on disk before its checkpoint (which is
what a resumed run trusts; see `workdir` for the layout):
  RecordsWriter      results.jsonl / results.csv
  CurvesWriter       curves/round_XX.npz, masks/round_XX.npz
  LineageWriter      lineage.npz: what the next round starts from, small enough to commit
  CheckpointWriter   checkpoints/: mid-round states every `execution.checkpoint_every` steps and
                     `execution.checkpoint_minutes` of wall time;
                     the lineage (and the round's trained weights and masks) after each round
  ProgressWriter     the progress line (to `status`, or `log` every few seconds), a round summary
  TensorBoardWriter  tensorboard/<ticket>/: each new evaluation point, live
"""

from __future__ import annotations

import itertools
import math
import os
import pathlib
import socket
import struct
import time
from typing import Callable

import flax.serialization
import jax
import numpy as np
from jax.experimental import multihost_utils
from tensorboardX.proto import event_pb2, summary_pb2
from tensorboardX.record_writer import masked_crc32c

from ltjax import files, lineup
from ltjax.core import tickets
from ltjax.engine import timing
from ltjax.runs import checkpoint, lineage_file, progress, results

METRICS = ("train_loss", "val_loss", "val_accuracy")  # the TensorBoard tags of a round


class Sink:
  """The sink protocol, doing nothing: subclass and override the calls you need."""

  def progress(self, round_index, step, snapshot, curves) -> None:
    pass

  def round_done(self, result, lineage) -> None:
    pass

  def close(self) -> None:
    pass


class FanOut(Sink):
  """Several sinks as one: every call goes to each of them, in the order given."""

  def __init__(self, *sinks):
    self.sinks = list(sinks)

  def progress(self, round_index, step, snapshot, curves):
    for s in self.sinks:
      with _writing(s):
        s.progress(round_index, step, snapshot, curves)

  def round_done(self, result, lineage):
    for s in self.sinks:
      with _writing(s):
        s.round_done(result, lineage)

  def close(self):
    for s in self.sinks:
      if hasattr(s, "close"):  # a user's sink need only implement the protocol
        with _writing(s):
          s.close()


def _writing(sink):
  """The run's timing phase of one sink's call ('write: checkpoints', ...)."""
  return timing.phase(f"write: {getattr(sink, 'label', type(sink).__name__)}")


# ---------------------------------------------------------------- one writer per kind of output
class RecordsWriter(Sink):
  """results.jsonl and results.csv: the round's records replace any earlier copy of them."""
  label = "records"

  def __init__(self, workdir: pathlib.Path, seed: int):
    self.workdir, self.seed = pathlib.Path(workdir), seed

  def round_done(self, result, lineage):
    results.write_round(self.workdir, results.records(result, self.seed))


class CurvesWriter(Sink):
  """curves/round_XX.npz (every ticket's curves and ids) and masks/round_XX.npz (the tickets')."""
  label = "curves"

  def __init__(self, workdir: pathlib.Path):
    self.workdir = pathlib.Path(workdir)

  def round_done(self, result, lineage):
    r = result.round
    ids = np.array([(t.trial, tickets.KINDS.index(t.kind), t.draw) for t in result.ids])
    _savez(self.workdir / "curves" / f"round_{r:02d}.npz", ids=ids, kinds=np.array(tickets.KINDS),
           **flax.serialization.to_state_dict(result.curves))
    rows = [i for i, t in enumerate(result.ids) if t.kind == tickets.TICKET]
    _savez(self.workdir / "masks" / f"round_{r:02d}.npz", **results.pack_masks(result.masks, rows))


class LineageWriter(Sink):
  """lineage.npz: the lineage the next round starts from, beyond what the config reproduces
  (`lineage_file`): a copy of the workdir without checkpoints continues from it."""
  label = "lineage"

  def __init__(self, workdir: pathlib.Path, cfg):
    self.workdir, self.cfg = pathlib.Path(workdir), cfg

  def round_done(self, result, lineage):
    lineage_file.save(self.workdir, lineage, self.cfg)


def _savez(path: pathlib.Path, **arrays) -> None:
  files.write_atomic(path, lambda f: np.savez(f, **arrays))


class CheckpointWriter(Sink):
  """checkpoints/: a round's states every `execution.checkpoint_every` steps and every
  `execution.checkpoint_minutes` of wall time, and the lineage after every round. Every process
  of a multi-process run takes part, and they save together (process 0's clock decides)."""
  label = "checkpoints"

  def __init__(self, ckpt: checkpoint.Checkpoints, cfg, clock: Callable[[], float] = time.monotonic,
               agree: Callable[[bool], bool] | None = None):
    self.ckpt, self.cfg, self.clock = ckpt, cfg, clock
    self.meta: dict = {}  # more of what a mid-round checkpoint's meta holds (the resume checks it)
    self.agree = agree or _process_zero_decides
    self._last_step = 0  # of the last mid-round checkpoint in this round
    self._last_time = clock()  # of the last checkpoint of any kind

  def progress(self, round_index, step, snapshot, curves):
    cfg = self.cfg
    every, minutes = cfg.execution.checkpoint_every, cfg.execution.checkpoint_minutes
    if not self.resumable(round_index) or step >= cfg.train.steps:
      return
    due = bool(every) and step - self._last_step >= every
    if minutes and not due:
      due = self.agree(self.clock() - self._last_time >= 60.0 * minutes)
    if due:
      self._save_midround(round_index, step, *snapshot(), curves)

  def resumable(self, round_index: int) -> bool:
    """Whether a mid-round state of this round can resume it: round 0 of a rewinding run holds
    theta_k outside the states, so it restarts instead."""
    return not (lineup.rewinding(self.cfg) and round_index == 0)

  def _save_midround(self, round_index, step, states, tracker, curves):
    tree = {"states": flax.serialization.to_state_dict(states),
            "tracker": flax.serialization.to_state_dict(tracker)}
    meta = {**self.meta, "round": round_index, "step": int(step),
            "curves": {k: np.asarray(v).tolist() for k, v in
                       flax.serialization.to_state_dict(curves).items()}}
    self.ckpt.save_midround(int(step), tree, meta)
    self._last_step, self._last_time = step, self.clock()

  def round_done(self, result, lineage):
    self._save_round(result, lineage)
    self._last_step, self._last_time = 0, self.clock()

  def _save_round(self, result, lineage):
    """The lineage that starts the next round (saving it clears the mid-round states)."""
    trained = {"params": flax.serialization.to_state_dict(result.final_params),
               "mask": flax.serialization.to_state_dict(result.masks)}
    self.ckpt.save_round(lineage.round, lineage_tree(lineage), {"round": lineage.round}, trained)


def _process_zero_decides(due: bool) -> bool:
  """Process 0's `due` on every process: their clocks differ, but they must save together."""
  if jax.process_count() == 1:
    return due
  return bool(multihost_utils.broadcast_one_to_all(np.int32(due)))


def lineage_tree(lineage) -> dict:
  """A lineage as its checkpoint holds it (and as a restore target)."""
  return flax.serialization.to_state_dict(lineage)


class ProgressWriter(Sink):
  """The progress line (steps, model-steps/s, time left, best validation loss) and, after each
  round, its summary table. `status` gets every line; else `log` one every `log_every_s` and at
  each round's end."""
  label = "progress"

  def __init__(self, setup, log: Callable[[str], None], status: Callable[[str], None] | None = None,
               first_round: int = 0, log_every_s: float = 5.0,
               clock: Callable[[], float] = time.perf_counter):
    self.cfg, self.log, self.status = setup.cfg, log, status
    self.log_every_s, self.clock = log_every_s, clock
    self._last_log: float | None = None  # none yet: the first report is always shown
    spans = []
    for r in range(lineup.num_rounds(setup.cfg)):
      ids = lineup.lineup(setup.cfg, r)
      spans.append(list(zip(lineup.first_steps(setup, ids, r).tolist(), lineup.last_steps(setup, ids, r).tolist())))
    self.run = progress.RunProgress(spans, first_round, idle_costs=not setup.trainer.skips_idle)

  def progress(self, round_index, step, snapshot, curves):
    now = self.clock()
    val = np.asarray(curves.val_loss)
    finite = val[np.isfinite(val)]
    line = progress.RunProgress.line(self.run.update(round_index, step, now),
                                     float(finite.min()) if finite.size else None)
    if self.status is not None:
      self.status(line)
    elif (self._last_log is None or now - self._last_log >= self.log_every_s
          or step == self.run.length(round_index)):
      self._last_log = now
      self.log(line)

  def round_done(self, result, lineage):
    recs = results.records(result, self.cfg.seed)
    self.log(f"round {result.round} done in {result.seconds:.1f}s\n" +
             results.format_table(results.summarize(recs)))


class TensorBoardWriter(Sink):
  """tensorboard/<ticket>/: one TensorBoard run per ticket (kind, trial, draw), tags
  round_XX/{train_loss,val_loss,val_accuracy} at each evaluation step, flushed at every report so
  that `tensorboard --logdir=WORKDIR` is live."""
  label = "tensorboard"

  def __init__(self, workdir: pathlib.Path, cfg):
    self.root, self.cfg = pathlib.Path(workdir) / "tensorboard", cfg
    self._files: dict[str, EventFile] = {}
    self._last_step: dict[int, int] = {}  # per round: the last step written

  def progress(self, round_index, step, snapshot, curves):
    ids = lineup.lineup(self.cfg, round_index)
    steps = np.asarray(curves.step)
    last = self._last_step.get(round_index, -1)
    metrics = {m: np.asarray(getattr(curves, m)) for m in METRICS}
    for col, tid in enumerate(ids):
      name = run_name(tid)
      if name not in self._files:
        self._files[name] = EventFile(self.root / name)
      for row in np.nonzero(steps[:, col] > last)[0]:
        self._files[name].scalars(int(steps[row, col]), {
            f"round_{round_index:02d}/{m}": v[row, col] for m, v in metrics.items()})
      self._files[name].flush()
    if steps.size:
      self._last_step[round_index] = max(last, int(steps.max()))

  def close(self):
    for f in self._files.values():
      f.close()


def run_name(tid: lineup.TicketId) -> str:
  """A ticket's TensorBoard run: 'ticket_trial0', 'reinit_trial1_draw0', 'random_mask_trial2'."""
  return f"{tid.kind}_trial{tid.trial}" + (f"_draw{tid.draw}" if tid.kind == tickets.REINIT else "")


_event_files = itertools.count()  # with the pid and the time: names never collide


class EventFile:
  """A new TensorBoard event file in `logdir` holding scalar events (one file per writer, as TF
  does): tensorboardX's Event protos and CRC in TFRecord framing. Not tensorboardX's own writers:
  they fsync at every flush, ~40x slower for 20 tickets' curves; live curves need only a flush."""

  def __init__(self, logdir: str | os.PathLike):
    self.logdir = pathlib.Path(logdir)
    self.logdir.mkdir(parents=True, exist_ok=True)
    self.path = self.logdir / (f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}."
                               f"{os.getpid()}.{next(_event_files)}.ltjax")
    self._f = open(self.path, "xb")
    self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
    self._f.flush()

  def scalars(self, step: int, values: dict[str, float]) -> None:
    """One event at `step` holding every finite value (NaN: nothing to plot)."""
    finite = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()
              if not math.isnan(v)]
    if finite:
      self._write(event_pb2.Event(wall_time=time.time(), step=int(step),
                                  summary=summary_pb2.Summary(value=finite)))

  def _write(self, event) -> None:
    data = event.SerializeToString()
    header = struct.pack("<Q", len(data))
    self._f.write(header + struct.pack("<I", masked_crc32c(header)) + data
                  + struct.pack("<I", masked_crc32c(data)))

  def flush(self) -> None:
    self._f.flush()

  def close(self) -> None:
    self._f.close()


# ---------------------------------------------------------------- the workdir's writers as one
class WorkdirSink(FanOut):
  """Every writer of a workdir (see the module docstring for the order and why). Only one
  process (`writer`) writes results, curves, progress and TensorBoard; all take part in
  checkpoints."""

  def __init__(self, workdir: pathlib.Path, setup, ckpt: checkpoint.Checkpoints,
               log: Callable[[str], None], log_every_s: float = 5.0, writer: bool = True,
               status: Callable[[str], None] | None = None, first_round: int = 0):
    cfg = setup.cfg
    ckpts = CheckpointWriter(ckpt, cfg)
    if not writer:
      super().__init__(ckpts)
      return
    super().__init__(RecordsWriter(workdir, cfg.seed), CurvesWriter(workdir), LineageWriter(workdir, cfg), ckpts,
                     ProgressWriter(setup, log, status, first_round, log_every_s),
                     TensorBoardWriter(workdir, cfg))
