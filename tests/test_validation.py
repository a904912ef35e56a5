"""The rules themselves: bad values refused with the field's name, good values let through."""

import math

import ml_collections
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bad_input import invalid

from ltjax import configs, models
from ltjax.core import roles
from ltjax.runs import validation


def valid(rule):
  """A strategy of values `rule` must accept."""
  if isinstance(rule, validation.Int):
    lo = rule.lo if rule.lo is not None else -10**6
    return st.one_of(st.integers(lo, rule.hi if rule.hi is not None else lo + 10**6),
                     *(st.just(a) for a in rule.also))
  if isinstance(rule, validation.Float):
    return st.floats(rule.lo if rule.lo is not None else -1e6, rule.hi if rule.hi is not None else 1e6,
                     exclude_min=rule.lo_open, exclude_max=rule.hi_open, allow_nan=False)
  if isinstance(rule, validation.Bool):
    return st.booleans()
  if isinstance(rule, validation.Str):
    return st.text(min_size=1).filter(str.strip)
  if isinstance(rule, validation.Choice):
    return st.sampled_from(rule.values())
  if isinstance(rule, validation.Seq):
    return st.lists(valid(rule.item), max_size=3, unique=rule.distinct).map(tuple)
  if isinstance(rule, validation.Mesh):
    return st.sampled_from(["auto", "single", "2", "2x1", "1x2"])
  if isinstance(rule, validation.Model):
    return st.sampled_from([*models.names(), "examples.networks:TwoLayerMLP"])
  if isinstance(rule, validation.SparsityType):
    return st.sampled_from(["unstructured", "units", "2:4", "1:8", "block:4x4", "Block:2X8"])
  if isinstance(rule, validation.RoleOverrides):
    entry = st.tuples(st.text(min_size=1).filter(lambda t: t.strip() and "=" not in t),
                      st.sampled_from(roles.ROLES)).map("=".join)
    return st.lists(entry, max_size=3).map(tuple)
  raise AssertionError(rule)


RULES = [name for name, rule in validation.SCHEMA.items()
         if not isinstance(rule, validation.ModelKwargs)]
# Free-form paths refuse nothing by rule; the binary-level test draws bad paths for them.
REFUSING = [name for name in RULES if validation.SCHEMA[name] != validation.Str()]


def _with(field, value):
  """lenet_quick with one field replaced; built from a dict so any type can go in."""
  d = configs.get("lenet_quick").to_dict()
  node = d
  *path, last = field.split(".")
  for p in path:
    node = node[p]
  node[last] = value
  return ml_collections.ConfigDict(d)


@pytest.mark.parametrize("field", REFUSING)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_each_rule_refuses_bad_values_by_name(field, data):
  rule = validation.SCHEMA[field]
  value = data.draw(invalid(rule))
  if isinstance(value, str) and not isinstance(rule, (validation.Str, validation.Choice, validation.Mesh)):
    value = {"True": True}.get(value, value)  # as a config file could hold it
  with pytest.raises(validation.ConfigError) as e:
    validation.check(_with(field, value))
  assert e.value.field == field and str(e.value).startswith(f"{field}: ")


@pytest.mark.parametrize("field", RULES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_each_rule_accepts_good_values(field, data):
  value = data.draw(valid(validation.SCHEMA[field]))
  assert validation.SCHEMA[field].problem(value) is None, value


def test_unknown_and_missing_fields_are_named():
  d = configs.get("lenet_quick").to_dict()
  d["train"]["lr_typo"] = 1.0
  with pytest.raises(validation.ConfigError, match=r"^train.lr_typo: unknown config field"):
    validation.check(ml_collections.ConfigDict(d))
  del d["train"]["lr_typo"], d["prune"]["scope"]
  with pytest.raises(validation.ConfigError, match=r"^prune.scope: missing"):
    validation.check(ml_collections.ConfigDict(d))


def test_model_kwargs_are_checked_against_the_model():
  cfg = configs.get("resnet20_cifar10")
  cfg.model_kwargs = ml_collections.ConfigDict({"width": 2})
  validation.check(cfg)
  cfg.model_kwargs = ml_collections.ConfigDict({"widht": 2})
  with pytest.raises(validation.ConfigError, match="^model_kwargs: .*widht"):
    validation.check(cfg)


def test_milestone_sentinel_and_schedule_rules():
  validation.check(_with("train.milestones", (0,)))
  validation.check(_with("train.milestones", (500, 1500)))
  with pytest.raises(validation.ConfigError, match="^train.milestones"):
    validation.check(_with("train.milestones", (-5,)))
  assert math.isfinite(configs.get("lenet_quick").train.lr)


def test_a_density_given_twice_is_refused_where_each_density_is_a_round():
  cfg = _with("prune.mode", "oneshot")
  cfg.prune.densities = (0.5, 0.2, 0.5)
  with pytest.raises(validation.ConfigError, match=r"^prune.densities: 0.5 is given twice"):
    validation.check(cfg)
  cfg.prune.densities = (0.5, 0.2)
  validation.check(cfg)


def test_densities_given_to_iterative_pruning_are_refused_not_ignored():
  # IMP prunes prune.rounds times at the role rates: densities set for it would silently do nothing.
  cfg = _with("prune.densities", (0.1, 0.05))
  with pytest.raises(validation.ConfigError, match=r"^prune.densities: prune.mode='iterative' .*prune.rounds"):
    validation.check(cfg)
  validation.check(_with("prune.densities", configs.get("lenet_quick").prune.densities))  # the default
  cfg.prune.mode = "oneshot"
  validation.check(cfg)


def test_a_model_factory_that_builds_no_network_is_named_once():
  with pytest.raises(validation.ConfigError, match=r"^model: expected a flax.linen.Module .*got FakeClock$"):
    validation.check(_with("model", "tests.conftest:FakeClock"))
