"""What every ltjax binary shares: one-line errors instead of tracebacks, and quiet logs."""

from __future__ import annotations

import logging as logging_std
import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags, logging


def fail(message: object, status: int = 1) -> NoReturn:
  """Print the first line of `message` as `error: ...` on stderr and exit with `status`."""
  lines = [line.strip() for line in str(message).splitlines() if line.strip()]
  sys.stderr.write(f"error: {lines[0] if lines else 'unknown error'}\n")
  sys.exit(status)


def _parse_flags(argv):
  """absl's flag parsing, but a bad flag is one line (status 2), not absl's usage dump."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(e, status=2)


class _DropNoise(logging_std.Filter):
  """TFDS warns on every image dataset that OpenCV is missing (PIL decodes fine): not news."""

  def filter(self, record):
    return "OpenCV is not installed" not in record.getMessage()


def run(main: Callable[[list[str]], None], argv: Sequence[str] | None = None) -> None:
  """`app.run` with WARNING-level logs (orbax and tfds are chatty at INFO) and one-line flag errors."""
  logging.set_verbosity(logging.WARNING)
  logging_std.getLogger("absl").addFilter(_DropNoise())
  app.run(main, argv=list(argv) if argv is not None else None, flags_parser=_parse_flags)
