"""What every ltjax binary shares: one-line errors instead of tracebacks, and quiet logs.

Every bad input, from a flag that does not parse to a config field out of range, ends the same
way: `error: <what>: <why>` on stderr, exit status 1, nothing written.
"""

from __future__ import annotations

import ast
import importlib.util
import logging as logging_std
import os
import pathlib
import sys
import time
from typing import Callable, NoReturn, Sequence

from absl import app, flags, logging


def fail(message: object, status: int = 1) -> NoReturn:
  """Print the first line of `message` as `error: ...` on stderr and exit with `status`."""
  lines = [line.strip() for line in str(message).splitlines() if line.strip()]
  sys.stderr.write(f"error: {lines[0] if lines else 'unknown error'}\n")
  sys.exit(status)


def check_flag(name: str, ok: Callable[[object], bool], message: str) -> None:
  """A rule for flag `name`, checked while flags are parsed: a bad value is `error: flag --name=V:
  message` (one line, status 1) before the binary does anything. `ok` may also raise to refuse."""

  def safe(value):
    try:
      return bool(ok(value))
    except Exception:  # a rule that cannot even look at the value refuses it
      return False
  flags.register_validator(name, safe, message=message)


def is_int_list(values, lo: int = 1) -> bool:
  return all(int(v) >= lo and str(int(v)) == str(v).strip() for v in values) and len(values) > 0


def bare_tuples(argv: Sequence[str], prefix: str = "--config.") -> list[str]:
  """argv with `--config.F=(reinit,twin)` written as the Python literal `('reinit', 'twin')`:
  ml_collections reads a tuple field only as a literal and would take the bare words for one
  string, '(reinit,twin)'. Literals (numbers, quoted words) pass unchanged."""
  out = list(argv)
  for i, arg in enumerate(out):
    if not arg.startswith(prefix):
      continue
    name, eq, value = arg.partition("=")
    if not eq and i + 1 < len(out) and not out[i + 1].startswith("--"):
      value = out[i + 1]  # `--config.F VALUE`
    if _bracketed(value) and isinstance(literal(value), str):
      text = repr(field_value(value))
      if eq:
        out[i] = f"{name}={text}"
      else:
        out[i + 1] = text
  return out


def _parse_flags(argv):
  """absl's flag parsing, but a bad flag is one line (status 2), not absl's usage dump."""
  try:
    return flags.FLAGS(bare_tuples(argv))
  except flags.Error as e:
    fail(e)
  except Exception as e:  # e.g. a config flag whose file raises: still one line, not a traceback
    fail(f"{type(e).__name__}: {e}")


class _DropNoise(logging_std.Filter):
  """TFDS warns on every image dataset that OpenCV is missing (PIL decodes fine): not news."""

  def filter(self, record):
    return "OpenCV is not installed" not in record.getMessage()


def run(main: Callable[[list[str]], None], argv: Sequence[str] | None = None) -> None:
  """`app.run` with WARNING-level logs (orbax and tfds are chatty at INFO) and one-line flag errors."""
  logging.set_verbosity(logging.WARNING)
  logging_std.getLogger("absl").addFilter(_DropNoise())
  def checked_main(args):
    if len(args) > 1:
      fail(f"unexpected arguments: {' '.join(args[1:])} (flags are --name=value)")
    return main(args)
  app.run(checked_main, argv=list(argv) if argv is not None else None, flags_parser=_parse_flags)


class StatusLine:
  """A progress line that rewrites itself in a terminal and becomes log lines when piped.

  In a terminal it is redrawn at most every `tty_every_s`; piped (a log file, CI), one
  timestamped line every `piped_every_s`. The first line always shows: the throttle counts from
  the last line shown, never from the clock's origin (`time.monotonic` starts at boot, so a
  machine up for less than the interval would otherwise swallow it). `log` prints a message
  above it. `clock` and `stamp` are injectable so tests need no real time.
  """

  def __init__(self, stream=None, tty_every_s: float = 0.5, piped_every_s: float = 10.0,
               clock: Callable[[], float] = time.monotonic,
               stamp: Callable[[], str] = lambda: time.strftime("%H:%M:%S")):
    self.stream = stream or sys.stdout
    self.tty = self.stream.isatty()
    self.every = tty_every_s if self.tty else piped_every_s
    self.clock, self.stamp = clock, stamp
    self._last: float | None = None
    self._shown = False

  def __call__(self, text: str) -> None:
    now = self.clock()
    if self._last is not None and now - self._last < self.every:
      return
    self._last = now
    if self.tty:
      self.stream.write("\r\x1b[2K" + text)
      self._shown = True
    else:
      self.stream.write(f"[{self.stamp()}] {text}\n")
    self.stream.flush()

  def log(self, message: str) -> None:
    if self._shown:
      self.stream.write("\r\x1b[2K")
      self._shown = False
    self.stream.write(f"[{self.stamp()}] {message}\n")
    self.stream.flush()


def config_source(name: str) -> str:
  """A preset's file for its name; a path stays a path. Unknown names fail in one line."""
  import ltjax.configs  # noqa: PLC0415
  if name.endswith(".py") or os.path.exists(name):
    return name
  if name not in ltjax.configs.available():
    fail(f"--config: unknown preset {name!r}; presets: {', '.join(ltjax.configs.available())} "
         "(or pass a config file path)")
  return str(pathlib.Path(ltjax.configs.__file__).parent / f"{name}.py")


def load_config(source: str):
  """The ConfigDict of `path[:arg]` (a user's file: any error in it is one line, theirs to fix)."""
  path, _, arg = source.partition(":")
  try:
    spec = importlib.util.spec_from_file_location("_ltjax_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = module.get_config(arg) if arg else module.get_config()
  except Exception as e:  # pylint: disable=broad-except
    fail(f"--config: cannot load {path}: {type(e).__name__}: {e}")
  if not hasattr(cfg, "keys"):
    fail(f"--config: {path}'s get_config() returned {type(cfg).__name__}, not a ConfigDict")
  return cfg


def literal(text: str):
  """A flag value as Python data where it reads as such (1, 0.5, (1, 2), True), else the text."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _bracketed(text: str) -> bool:
  return len(text) >= 2 and text[0] in "([" and text[-1] in ")]"


def field_value(text: str):
  """A config field's value on the command line: `literal`, and a bracketed tuple of bare words
  (`(reinit,twin)`) as a tuple of strings."""
  if _bracketed(text):
    return tuple(field_value(p.strip()) for p in text[1:-1].split(",") if p.strip())
  return literal(text)


def take_fields(argv: list[str], prefixes: Sequence[str]) -> tuple[list[str], dict[str, dict[str, str]]]:
  """Takes `PREFIXFIELD=V` (or `PREFIXFIELD V`) out of argv before absl sees it: (the rest,
  {prefix: {field: raw value}}). A field given twice, under any of the prefixes, fails in one
  line: the later one would silently win."""
  out, taken, i = [], {p: {} for p in prefixes}, 0
  while i < len(argv):
    arg = argv[i]
    prefix = next((p for p in prefixes if arg.startswith(p)), None)
    if prefix is None:
      out.append(arg)
      i += 1
      continue
    if "=" not in arg:
      if i + 1 >= len(argv):
        fail(f"{arg}: needs a value ({arg}=V)")
      arg, i = f"{arg}={argv[i + 1]}", i + 1
    field, value = arg[len(prefix):].split("=", 1)
    if not field:
      fail(f"{arg}: name a config field, e.g. {prefix}prune.fc_rate=...")
    if any(field in t for t in taken.values()):
      fail(f"{prefix}{field}: {field} is given twice")
    taken[prefix][field] = value
    i += 1
  return out, taken
