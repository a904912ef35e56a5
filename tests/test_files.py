"""ltjax.files: the one atomic writer and the one cache-dir resolver, which the layers share."""

import os
import pathlib

import numpy as np
import pytest

from ltjax import files
from ltjax.data import datasets
from ltjax.engine import runtime


def _leftovers(directory: pathlib.Path) -> list[str]:
  return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("content, expected", [
    (b"\x00bytes\xff", b"\x00bytes\xff"), ("text é\r\n", "text é\r\n".encode()),
    (lambda f: f.write(b"streamed"), b"streamed")])
def test_write_atomic_writes_bytes_text_or_a_stream(tmp_path, content, expected):
  path = tmp_path / "sub" / "f.bin"  # a missing parent is made
  files.write_atomic(path, content)
  assert path.read_bytes() == expected and _leftovers(path.parent) == []


def test_write_atomic_replaces_whole_or_not_at_all(tmp_path):
  path = tmp_path / "results.jsonl"
  files.write_atomic(path, "old\n")

  def fails_half_way(f):
    f.write(b"new, but torn")
    raise OSError("disk full")

  with pytest.raises(OSError, match="disk full"):
    files.write_atomic(path, fails_half_way)
  assert path.read_text() == "old\n" and _leftovers(tmp_path) == []
  def interrupted(f):
    f.write(b"new")
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):  # Ctrl-C too leaves no temp file
    files.write_atomic(path, interrupted)
  assert path.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_write_atomic_permissions_follow_the_umask_unless_given(tmp_path):
  old = os.umask(0o027)
  try:
    files.write_atomic(tmp_path / "a", b"")
    files.write_atomic(tmp_path / "b", b"", mode=0o644)
  finally:
    os.umask(old)
  assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640
  assert (tmp_path / "b").stat().st_mode & 0o777 == 0o644


def test_write_atomic_streams_an_npz(tmp_path):
  files.write_atomic(tmp_path / "x.npz", lambda f: np.savez(f, a=np.arange(3)))
  np.testing.assert_array_equal(np.load(tmp_path / "x.npz")["a"], [0, 1, 2])


def test_cache_dir_env_then_xdg_then_home(monkeypatch, tmp_path):
  monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
  monkeypatch.delenv("LTJAX_TEST_CACHE", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert files.cache_dir("jax") == tmp_path / "home" / ".cache" / "ltjax" / "jax"
  assert files.cache_dir() == tmp_path / "home" / ".cache" / "ltjax"
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert files.cache_dir("a", "b", env="LTJAX_TEST_CACHE") == tmp_path / "xdg" / "ltjax" / "a" / "b"
  monkeypatch.setenv("LTJAX_TEST_CACHE", "")  # empty: as if unset
  assert files.cache_dir("jax", env="LTJAX_TEST_CACHE") == tmp_path / "xdg" / "ltjax" / "jax"
  monkeypatch.setenv("LTJAX_TEST_CACHE", str(tmp_path / "mine"))
  assert files.cache_dir("jax", env="LTJAX_TEST_CACHE") == tmp_path / "mine"


def test_compilation_and_data_caches_share_one_root(monkeypatch, tmp_path):
  """The compiled programs' dir and a read-only dataset's decoded cache, as before the merge."""
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  monkeypatch.delenv(runtime.CACHE_ENV, raising=False)
  assert runtime.CACHE_ENV == "LTJAX_CACHE_DIR"
  assert runtime.default_cache_dir() == tmp_path / "xdg" / "ltjax" / "jax"
  monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path / "programs"))
  assert runtime.default_cache_dir() == tmp_path / "programs"
  version_dir = tmp_path / "ro" / "mnist" / "3.0.1"
  version_dir.mkdir(parents=True)
  version_dir.chmod(0o555)
  try:
    cache = datasets._default_cache_dir(version_dir)
  finally:
    version_dir.chmod(0o755)
  assert cache.parent == tmp_path / "xdg" / "ltjax" and len(cache.name) == 16


def test_stale_temps_of_killed_writes_go_and_nothing_else(tmp_path):
  (tmp_path / "results.jsonl").write_text("kept\n")
  (tmp_path / ".results.jsonl.8435.5.tmp").write_text("half")
  (tmp_path / ".hidden").write_text("kept")
  files.remove_stale_temps(tmp_path)
  files.remove_stale_temps(tmp_path / "missing")
  assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "results.jsonl"]
