"""TensorBoard curves: event files read back by TensorBoard's own reader and by a small one here,
and the workdir's layout (one run per ticket, round_XX/<metric> tags, each point written once)."""

import math
import struct

import numpy as np
import pytest

from ltjax import (
  configs,
  lineup,
  lottery,  # noqa: F401 -- registers the prune modes that `lineup` looks up
)
from ltjax.engine import early_stop
from ltjax.runs import writers


def read_scalars(path) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in an event file, checking each record's CRCs.

  tensorboardX writes but has no reader, and the tensorboard package is only a test extra: this
  reads the TFRecord framing (length, masked CRC of it, payload, masked CRC of it) itself.
  """
  from tensorboardX.proto import event_pb2
  from tensorboardX.record_writer import masked_crc32c
  raw = open(path, "rb").read()
  out, pos = [], 0
  while pos < len(raw):
    header = raw[pos:pos + 8]
    (n,) = struct.unpack("<Q", header)
    if struct.unpack_from("<I", raw, pos + 8)[0] != masked_crc32c(header):
      raise ValueError(f"{path}: bad length CRC at byte {pos}")
    payload = raw[pos + 12:pos + 12 + n]
    if len(payload) < n or struct.unpack_from("<I", raw, pos + 12 + n)[0] != masked_crc32c(payload):
      raise ValueError(f"{path}: bad payload CRC at byte {pos}")
    event = event_pb2.Event.FromString(payload)
    out += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
    pos += 16 + n
  return out


def run_scalars(rundir) -> list[tuple[int, str, float]]:
  """Every scalar of a TensorBoard run (all its event files, oldest first)."""
  return [s for f in sorted(rundir.iterdir()) for s in read_scalars(f)]


def test_scalars_round_trip_through_tensorboards_reader(tmp_path):
  accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  w = writers.EventFile(tmp_path / "run")
  for step in (100, 200, 300):
    w.scalars(step, {"round_00/val_loss": 1.0 / step, "round_00/val_accuracy": 0.5,
                     "round_00/skipped": float("nan")})
  w.close()
  acc = accumulator.EventAccumulator(str(tmp_path / "run"))
  acc.Reload()
  assert sorted(acc.Tags()["scalars"]) == ["round_00/val_accuracy", "round_00/val_loss"]
  events = acc.Scalars("round_00/val_loss")
  assert [e.step for e in events] == [100, 200, 300]
  assert [e.value for e in events] == pytest.approx([0.01, 0.005, 1 / 300])
  assert [(s, t) for s, t, _ in read_scalars(w.path) if t.endswith("val_loss")] == [
      (100, "round_00/val_loss"), (200, "round_00/val_loss"), (300, "round_00/val_loss")]


def test_a_corrupted_record_is_detected(tmp_path):
  w = writers.EventFile(tmp_path)
  w.scalars(1, {"a": 1.0})
  w.close()
  assert read_scalars(w.path) == [(1, "a", 1.0)]
  raw = bytearray(w.path.read_bytes())
  raw[-6] ^= 0xFF
  w.path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match="CRC"):
    read_scalars(w.path)


def test_two_writers_on_one_run_never_share_a_file(tmp_path):
  """A resumed run in the same process and second adds a file; it never truncates the first."""
  a, b = writers.EventFile(tmp_path), writers.EventFile(tmp_path)
  a.scalars(1, {"x": 1.0})
  b.scalars(2, {"x": 2.0})
  a.close()
  b.close()
  assert a.path != b.path
  assert sorted(run_scalars(tmp_path)) == [(1, "x", 1.0), (2, "x", 2.0)]


def _cfg():
  cfg = configs.get("lenet_quick")
  cfg.trials, cfg.prune.rounds, cfg.reinit_draws = 2, 1, 1
  cfg.controls = ("reinit", "random_mask")
  return cfg


def _curves(steps, k, nan_at=()):
  """Curves as a round reports them: rows [len(steps), k]; val_loss = step + column / 10."""
  step = np.repeat(np.asarray(steps, np.int32)[:, None], k, axis=1)
  val = step + np.arange(k)[None, :] / 10
  val[list(nan_at)] = np.nan
  return early_stop.Curves(step=step, train_loss=val + 1000, val_loss=val, val_accuracy=val / 1e4)


def test_one_run_per_ticket_with_every_evaluation_once_and_live(tmp_path):
  cfg = _cfg()
  ids = lineup.lineup(cfg, 1)
  tb = writers.TensorBoardWriter(tmp_path, cfg)
  tb.progress(1, 100, None, _curves([50, 100], len(ids)))
  # Flushed at each report: a TensorBoard watching the workdir sees it before the round ends.
  assert [s for s, t, _ in run_scalars(tmp_path / "tensorboard" / "ticket_trial1")
          if t == "round_01/val_loss"] == [50, 100]
  tb.progress(1, 200, None, _curves([50, 100, 150, 200], len(ids), nan_at=(3,)))
  tb.progress(1, 200, None, _curves([50, 100, 150, 200], len(ids)))  # nothing new
  tb.close()
  runs = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
  assert runs == sorted(writers.run_name(t) for t in ids) == sorted(
      ["ticket_trial0", "ticket_trial1", "reinit_trial0_draw0", "reinit_trial1_draw0",
       "random_mask_trial0", "random_mask_trial1"])
  col = ids.index(lineup.TicketId("reinit", 1, 0))
  scalars = run_scalars(tmp_path / "tensorboard" / "reinit_trial1_draw0")
  assert {t for _, t, _ in scalars} == {f"round_01/{m}" for m in writers.METRICS}
  val = [(s, v) for s, t, v in scalars if t == "round_01/val_loss"]
  # Each step once; the NaN at step 200 is not plotted (and not rewritten later).
  assert val == [(s, pytest.approx(s + col / 10)) for s in (50, 100, 150)]
  assert all(not math.isnan(v) for _, _, v in scalars)
