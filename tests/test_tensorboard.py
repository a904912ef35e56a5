"""Event files written without TensorFlow, read back by TensorBoard's own reader."""

import pytest

from ltjax.run import tensorboard


def test_crc32c_known_values():
  assert tensorboard.crc32c(b"") == 0
  assert tensorboard.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_scalars_round_trip_through_tensorboards_reader(tmp_path):
  accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  w = tensorboard.EventWriter(tmp_path / "run")
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
  ours = tensorboard.read_scalars(w.path)
  assert [(s, t) for s, t, _ in ours if t.endswith("val_loss")] == [(100, "round_00/val_loss"),
                                                                    (200, "round_00/val_loss"),
                                                                    (300, "round_00/val_loss")]


def test_a_corrupted_record_is_detected(tmp_path):
  w = tensorboard.EventWriter(tmp_path)
  w.scalars(1, {"a": 1.0})
  w.close()
  raw = bytearray(w.path.read_bytes())
  raw[-6] ^= 0xFF
  w.path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match="CRC"):
    tensorboard.read_scalars(w.path)
