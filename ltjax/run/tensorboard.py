"""TensorBoard event files written without TensorFlow, so `tensorboard --logdir=WORKDIR` is live.

An event file is a sequence of TFRecord-framed `Event` protos (length, masked CRC-32C of the
length, payload, masked CRC-32C of the payload). Scalars are all ltjax writes, so the few proto
fields they need are encoded here by hand rather than pulling in TensorFlow or the tensorboard
package (which a user installs only to view the files).
"""

from __future__ import annotations

import os
import pathlib
import socket
import struct
import time


def _crc32c_table() -> list[int]:
  table = []
  for i in range(256):
    crc = i
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    table.append(crc)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for b in data:
    crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  while True:
    byte, n = n & 0x7F, n >> 7
    out.append(byte | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _key(field: int, wire: int) -> bytes:
  return _varint(field << 3 | wire)


def _bytes_field(field: int, payload: bytes) -> bytes:
  return _key(field, 2) + _varint(len(payload)) + payload


def event(wall_time: float, step: int = 0, *, file_version: str | None = None,
          scalars: dict[str, float] | None = None) -> bytes:
  """A serialized tensorflow.Event: wall_time=1 (double), step=2, file_version=3, summary=5."""
  out = _key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(step & (2**64 - 1))
  if file_version is not None:
    out += _bytes_field(3, file_version.encode())
  if scalars:
    values = b"".join(  # Summary.value=1 { tag=1, simple_value=2 (float) }
        _bytes_field(1, _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value))
        for tag, value in scalars.items())
    out += _bytes_field(5, values)
  return out


def record(payload: bytes) -> bytes:
  length = struct.pack("<Q", len(payload))
  return (length + struct.pack("<I", _masked_crc(length)) + payload
          + struct.pack("<I", _masked_crc(payload)))


class EventWriter:
  """Appends scalar events to a new event file in `logdir` (one file per writer, as TF does)."""

  def __init__(self, logdir: str | os.PathLike):
    self.logdir = pathlib.Path(logdir)
    self.logdir.mkdir(parents=True, exist_ok=True)
    name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.ltjax"
    self.path = self.logdir / name
    self._f = open(self.path, "ab")
    self._f.write(record(event(time.time(), file_version="brain.Event:2")))
    self._f.flush()

  def scalars(self, step: int, values: dict[str, float]) -> None:
    finite = {k: float(v) for k, v in values.items() if v == v}  # NaN: nothing to plot
    if finite:
      self._f.write(record(event(time.time(), int(step), scalars=finite)))

  def flush(self) -> None:
    self._f.flush()

  def close(self) -> None:
    self._f.close()


def read_scalars(path: str | os.PathLike) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in an event file, checking every CRC: for tests and tools."""
  data = pathlib.Path(path).read_bytes()
  out, pos = [], 0
  while pos < len(data):
    (n,) = struct.unpack_from("<Q", data, pos)
    if struct.unpack_from("<I", data, pos + 8)[0] != _masked_crc(data[pos:pos + 8]):
      raise ValueError(f"{path}: bad length CRC at byte {pos}")
    payload = data[pos + 12:pos + 12 + n]
    if struct.unpack_from("<I", data, pos + 12 + n)[0] != _masked_crc(payload):
      raise ValueError(f"{path}: bad payload CRC at byte {pos}")
    out += _parse_event(payload)
    pos += 16 + n
  return out


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
  shift = n = 0
  while True:
    b = buf[pos]
    n |= (b & 0x7F) << shift
    pos += 1
    if not b & 0x80:
      return n, pos
    shift += 7


def _fields(buf: bytes):
  pos = 0
  while pos < len(buf):
    key, pos = _read_varint(buf, pos)
    field, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _read_varint(buf, pos)
    elif wire == 1:
      value, pos = buf[pos:pos + 8], pos + 8
    elif wire == 5:
      value, pos = buf[pos:pos + 4], pos + 4
    elif wire == 2:
      n, pos = _read_varint(buf, pos)
      value, pos = buf[pos:pos + n], pos + n
    else:
      raise ValueError(f"unsupported wire type {wire}")
    yield field, value


def _parse_event(payload: bytes) -> list[tuple[int, str, float]]:
  step, out = 0, []
  for field, value in _fields(payload):
    if field == 2:
      step = value
    elif field == 5:
      for f, v in _fields(value):
        if f == 1:
          parts = dict(_fields(v))
          out.append((step, parts[1].decode(), struct.unpack("<f", parts[2])[0]))
  return out
