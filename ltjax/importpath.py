"""'package.module:Name' -> the object it names: how configs and binaries reach a user's network,
data loader, score or mode. Imports nothing of ltjax, so every layer may use it."""

from __future__ import annotations

import importlib
from typing import Any


class ImportPathError(ValueError):
  """The module cannot be imported, or does not have the name; one line, for the user."""


def split(path: str) -> tuple[str, str] | None:
  """(module, attribute) of 'package.module:Name', or None if `path` is not of that form."""
  module_name, sep, attr = path.partition(":")
  return (module_name, attr) if sep and module_name and attr else None


def resolve(module_name: str, attr: str = "") -> Any:
  """The module (and its attribute `attr`, dotted for nested names); user code's import errors,
  whatever they are, become one ImportPathError line."""
  try:
    obj = importlib.import_module(module_name)
  except Exception as e:  # noqa: BLE001 -- any failure importing user code is the user's to see
    raise ImportPathError(f"cannot import {module_name!r}: {type(e).__name__}: {e}") from None
  for part in attr.split(".") if attr else ():
    if not hasattr(obj, part):
      raise ImportPathError(f"{module_name!r} has no attribute {attr!r}")
    obj = getattr(obj, part)
  return obj
