"""The rules a config value may follow on its own: one small class per kind of value, each with
`problem(value) -> one line or None`. `ltjax.runs.validation` composes them into the schema.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable

from ltjax import models
from ltjax.core import pruning, roles, structure
from ltjax.engine import parallel

def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class Int:
  """An integer in [lo, hi] (either bound optional), or one of `also` (sentinels such as -1)."""
  lo: int | None = None
  hi: int | None = None
  also: tuple[int, ...] = ()

  def problem(self, v) -> str | None:
    if not _is_int(v):
      return f"must be an integer, got {v!r}"
    if v in self.also:
      return None
    if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
      return f"must be {self.describe()}, got {v}"
    return None

  def describe(self) -> str:
    rng = (f"in [{self.lo}, {self.hi}]" if self.lo is not None and self.hi is not None else
           f">= {self.lo}" if self.lo is not None else f"<= {self.hi}" if self.hi is not None else "any integer")
    return " or ".join([*map(str, self.also), rng]) if self.also else rng


@dataclasses.dataclass(frozen=True)
class Float:
  """A finite number in the interval given by lo/hi; `lo_open`/`hi_open` exclude the bound."""
  lo: float | None = None
  hi: float | None = None
  lo_open: bool = False
  hi_open: bool = False

  def problem(self, v) -> str | None:
    if not (isinstance(v, (int, float)) and not isinstance(v, bool)) or not math.isfinite(v):
      return f"must be a finite number, got {v!r}"
    below = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
    above = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
    return f"must be {self.describe()}, got {v!r}" if below or above else None

  def describe(self) -> str:
    if self.lo is not None and self.hi is not None:
      return f"in {'(' if self.lo_open else '['}{self.lo}, {self.hi}{')' if self.hi_open else ']'}"
    if self.lo is not None:
      return f"{'>' if self.lo_open else '>='} {self.lo}"
    return f"{'<' if self.hi_open else '<='} {self.hi}" if self.hi is not None else "any number"


@dataclasses.dataclass(frozen=True)
class Bool:
  def problem(self, v) -> str | None:
    return None if isinstance(v, bool) else f"must be True or False, got {v!r}"


@dataclasses.dataclass(frozen=True)
class Str:
  nonempty: bool = False

  def problem(self, v) -> str | None:
    if not isinstance(v, str):
      return f"must be a string, got {v!r}"
    return "must not be empty" if self.nonempty and not v.strip() else None


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of `options` (a tuple, or a function returning them for registries that can grow)."""
  options: tuple | Callable[[], Iterable]

  def values(self) -> tuple:
    return tuple(self.options() if callable(self.options) else self.options)

  def problem(self, v) -> str | None:
    values = self.values()
    if v in values and type(v) in {type(x) for x in values}:
      return None
    return f"must be one of {', '.join(map(repr, values))}; got {v!r}"


@dataclasses.dataclass(frozen=True)
class Seq:
  """A tuple or list whose items each follow `item`."""
  item: Any
  min_len: int = 0
  increasing: bool = False
  distinct: bool = False  # a repeated item means the user meant something else

  def problem(self, v) -> str | None:
    if not isinstance(v, (tuple, list)):
      return f"must be a tuple, got {v!r}"
    if len(v) < self.min_len:
      return f"must have at least {self.min_len} item(s), got {tuple(v)!r}"
    for i, x in enumerate(v):
      p = self.item.problem(x)
      if p:
        return f"item {i} {p}"
    if self.increasing and any(b <= a for a, b in zip(v, v[1:])):
      return f"must be strictly increasing, got {tuple(v)!r}"
    if self.distinct and (twice := [x for i, x in enumerate(v) if x in v[:i]]):
      return f"names {twice[0]!r} twice: {tuple(v)!r}"
    return None


@dataclasses.dataclass(frozen=True)
class SparsityType:
  def problem(self, v) -> str | None:
    try:
      structure.parse(v)
    except pruning.PruningError as e:
      return str(e)
    return None


@dataclasses.dataclass(frozen=True)
class Mesh:
  def problem(self, v) -> str | None:
    if not isinstance(v, str):
      return f"must be a string, got {v!r}"
    try:
      parallel.parse_mesh(v)
    except parallel.LayoutError as e:
      return str(e)
    return None


@dataclasses.dataclass(frozen=True)
class Model:
  """A registered model's name, or 'package.module:Factory' naming a network of yours."""

  def problem(self, v) -> str | None:
    if not isinstance(v, str) or not v.strip():
      return f"must be a model name or package.module:Factory, got {v!r}"
    if ":" in v:
      try:
        models.load_factory(v)
      except models.ModelError as e:
        return str(e)
      return None
    return None if v in models.names() else (
        f"unknown model {v!r}; use one of {', '.join(models.names())} or package.module:Factory")


@dataclasses.dataclass(frozen=True)
class RoleOverrides:
  """'pattern=role' entries: leaves whose '/'-joined path matches the pattern take the role."""

  def problem(self, v) -> str | None:
    if not isinstance(v, (tuple, list)):
      return f"must be a tuple of 'pattern=role' strings, got {v!r}"
    for i, item in enumerate(v):
      pattern, sep, role = item.partition("=") if isinstance(item, str) else ("", "", "")
      if not sep or not pattern.strip():
        return f"item {i} must be 'pattern=role' (e.g. 'head/*=fixed'), got {item!r}"
      if role not in roles.ROLES:
        return f"item {i}: {role!r} is not a role; use one of {', '.join(roles.ROLES)}"
    return None


@dataclasses.dataclass(frozen=True)
class ModelKwargs:
  """Keyword arguments of the model's builder; checked against the model in `check`."""

  def problem(self, v) -> str | None:
    return None if hasattr(v, "items") else f"must be a mapping, got {v!r}"
