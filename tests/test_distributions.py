"""Layer densities from a network density: uniform, ER, ERK (RigL's loop) and IMP's role ratios."""

import jax
import numpy as np
import pytest

from ltjax.core import distributions, pruning
from ltjax.core.roles import FC, FIXED, OUTPUT, CONV

S = jax.ShapeDtypeStruct
LENET = {"fc1": {"kernel": S((784, 300), np.float32), "bias": S((300,), np.float32)},
         "fc2": {"kernel": S((300, 100), np.float32), "bias": S((100,), np.float32)},
         "out": {"kernel": S((100, 10), np.float32), "bias": S((10,), np.float32)}}
ROLES = {"fc1": {"kernel": FC, "bias": FIXED}, "fc2": {"kernel": FC, "bias": FIXED},
         "out": {"kernel": OUTPUT, "bias": FIXED}}
SIZES = {"fc1": 235_200, "fc2": 30_000, "out": 1_000}


def _kernels(tree):
  return {k: tree[k]["kernel"] for k in SIZES}


@pytest.mark.parametrize("distribution", ["uniform", "er", "erk", "per_role"])
@pytest.mark.parametrize("density", [0.5, 0.1, 0.02])
def test_every_distribution_keeps_the_network_density(distribution, density):
  d = distributions.layer_densities(LENET, ROLES, density, distribution, role_rates={"fc": 0.2, "output": 0.1})
  assert all(d[k]["bias"] == 1.0 for k in SIZES)  # fixed leaves are never pruned
  kept = sum(_kernels(d)[k] * n for k, n in SIZES.items())
  assert kept == pytest.approx(density * sum(SIZES.values()), rel=1e-9)
  assert all(0.0 < v <= 1.0 for v in _kernels(d).values())
  counts = distributions.keep_counts(LENET, d)
  assert distributions.network_density(LENET, ROLES, counts) == pytest.approx(density, abs=3 / 266_200)


def test_erk_makes_a_layer_dense_when_its_share_would_pass_one_and_solves_again():
  d = _kernels(distributions.layer_densities(LENET, ROLES, 0.1, "erk"))
  # By hand: eps = 26620 / (1084 + 400 + 110) puts the 100x10 output at 1.84, so it is made dense;
  # then eps = (26620 - 1000) / (1084 + 400) over the two hidden layers.
  eps = 25_620 / 1_484
  assert d["out"] == 1.0
  assert d["fc1"] == pytest.approx(eps * 1_084 / 235_200) and d["fc2"] == pytest.approx(eps * 400 / 30_000)


def test_erk_counts_a_conv_kernels_taps_and_er_does_not():
  params = {"conv": {"kernel": S((3, 3, 16, 32), np.float32)}, "fc": {"kernel": S((512, 64), np.float32)}}
  roles = {"conv": {"kernel": CONV}, "fc": {"kernel": FC}}
  erk = distributions.layer_densities(params, roles, 0.2, "erk")
  er = distributions.layer_densities(params, roles, 0.2, "er")
  ratio = lambda d: d["conv"]["kernel"] / d["fc"]["kernel"]  # noqa: E731
  assert ratio(erk) == pytest.approx(((3 + 3 + 16 + 32) / (9 * 16 * 32)) / ((512 + 64) / (512 * 64)))
  assert ratio(er) == pytest.approx(((144 + 32) / (144 * 32)) / ((512 + 64) / (512 * 64)))


def test_per_role_keeps_imps_ratios_and_uniform_and_dense_layers():
  d = _kernels(distributions.layer_densities(LENET, ROLES, 0.1, "per_role", role_rates={"fc": 0.2, "output": 0.1}))
  rates = pruning.one_shot_rates({"fc": 0.2, "output": 0.1}, {"fc": 265_200, "output": 1_000}, 0.1)
  assert d["fc1"] == d["fc2"] == pytest.approx(1 - rates["fc"]) and d["out"] == pytest.approx(1 - rates["output"])
  u = _kernels(distributions.layer_densities(LENET, ROLES, 0.1, "uniform", dense=("out/kernel",)))
  assert u["out"] == 1.0 and u["fc1"] == u["fc2"] == pytest.approx((26_620 - 1_000) / 265_200)


@pytest.mark.parametrize("kwargs, message", [
    ({"distribution": "erk", "density": 0.0}, "density must be in"),
    ({"distribution": "erk", "density": 1.5}, "density must be in"),
    ({"distribution": "erk", "density": float("nan")}, "density must be in"),
    ({"distribution": "gaussian", "density": 0.1}, "distribution must be one of"),
    ({"distribution": "per_role", "density": 0.1}, "needs the roles' pruning rates"),
    ({"distribution": "uniform", "density": 0.1, "dense": ("nope/kernel",)}, "not leaves of the network"),
    ({"distribution": "uniform", "density": 0.001, "dense": ("fc2/kernel",)}, "below the"),
])
def test_bad_requests_are_one_line(kwargs, message):
  with pytest.raises(pruning.PruningError, match=message) as e:
    distributions.layer_densities(LENET, ROLES, **kwargs)
  assert "\n" not in str(e.value)


def test_erk_on_a_network_with_nothing_prunable_is_one_line():
  roles = jax.tree.map(lambda _: FIXED, ROLES)
  with pytest.raises(pruning.PruningError, match="no prunable layer"):
    distributions.layer_densities(LENET, roles, 0.1, "erk")
