"""Files ltjax writes outside the maths: atomic writes and the user's cache dir.

No ltjax imports, so every layer (data, engine, run) can use it without importing upwards.
"""

from __future__ import annotations

import itertools
import os
import pathlib
from typing import BinaryIO, Callable

_tmp_names = itertools.count()  # unique temp names within the process; the pid covers the rest


def write_atomic(path: str | os.PathLike, content: bytes | str | Callable[[BinaryIO], object],
                 mode: int | None = None) -> None:
  """Replace `path` with `content` so a reader (or a crash) sees the old file or the new one, whole.

  `content` is bytes, text (UTF-8), or a function that writes into the open binary file (e.g.
  `lambda f: np.savez(f, **arrays)`, which streams instead of holding the bytes). The data goes
  to a temp file beside `path`, is fsynced, then renamed over `path`; any failure removes the
  temp file. The file gets the permissions of a plain `open` (umask applies) unless `mode` is
  given. The parent dir is created if missing.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_tmp_names)}.tmp")
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, "wb") as f:
      if callable(content):
        content(f)
      else:
        f.write(content.encode() if isinstance(content, str) else content)
      f.flush()
      os.fsync(f.fileno())
    if mode is not None:
      os.chmod(tmp, mode)
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  _fsync_dir(path.parent)


def remove_stale_temps(directory: str | os.PathLike) -> None:
  """Delete the temp files that `write_atomic` calls killed mid-write left in `directory`. Only
  for a directory whose lock the caller holds: a live writer's temp file would go too."""
  for tmp in pathlib.Path(directory).glob(".*.*.*.tmp"):
    tmp.unlink(missing_ok=True)


def _fsync_dir(directory: pathlib.Path) -> None:
  """Make the rename itself durable; best effort (some file systems refuse to open a dir)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def cache_dir(*parts: str, env: str | None = None) -> pathlib.Path:
  """$`env` if set and non-empty, else ($XDG_CACHE_HOME or ~/.cache)/ltjax/`parts`: the one place
  ltjax keeps what it can rebuild (compiled programs, decoded datasets on read-only mounts)."""
  if env and os.environ.get(env):
    return pathlib.Path(os.environ[env]).expanduser()
  root = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ltjax"
  return root.joinpath(*parts)
