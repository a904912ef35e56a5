"""Pruning at initialization: scores against their definitions, exact densities, controls."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import layer_counts, layer_sizes

from ltjax.core import masks, pruning, scores
from ltjax.methods import at_init
from ltjax.models import mlp, registry
from ltjax.runs import comparison
from tests.test_bad_input import assert_refused


@pytest.fixture(scope="module")
def setup(tiny_data):
  spec = registry.ModelSpec(name="crit_mlp", output_layer="out",
                            build=lambda num_classes=10: mlp.MLP(hidden=(16, 8), num_classes=num_classes))
  module = spec.build()
  x = jnp.asarray(tiny_data.normalize(tiny_data.train.images[:32]))
  y = jnp.asarray(tiny_data.train.labels[:32])
  params = module.init(jax.random.key(0), x[:1])["params"]
  roles = spec.layer_roles(params)

  def apply(p, inputs):
    return module.apply({"params": p}, inputs)

  def loss(p, images, labels):
    return optax.softmax_cross_entropy_with_integer_labels(apply(p, images), labels).mean()

  net = scores.Network(apply=apply, loss=loss, input_shape=x.shape[1:], images=x, labels=y)
  return params, roles, net


def _flat(tree):
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def test_snip_is_gradient_times_weight(setup):
  params, roles, net = setup
  s = jax.jit(lambda p: scores.snip(p, masks.ones(p), None, scores.Context(p, net)))(params)
  g = jax.jit(jax.grad(net.loss))(params, net.images, net.labels)
  np.testing.assert_allclose(_flat(s), jnp.abs(_flat(g) * _flat(params)), rtol=1e-6)


def test_grasp_uses_the_hessian_gradient_product(setup):
  _, _, net = setup
  module = mlp.MLP(hidden=(3,), num_classes=10)  # small enough for an explicit Hessian
  params = module.init(jax.random.key(2), net.images[:1])["params"]
  small = scores.Network(apply=lambda p, x: module.apply({"params": p}, x),
                           loss=lambda p, x, y: optax.softmax_cross_entropy_with_integer_labels(
                               module.apply({"params": p}, x), y).mean(),
                           input_shape=net.input_shape, images=net.images, labels=net.labels)
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  loss = lambda f: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
      small.apply(unravel(f), small.images) / scores.GRASP_TEMPERATURE, small.labels).mean()
  g = jax.grad(loss)(flat)
  hg = jax.jit(jax.hessian(loss))(flat) @ g
  s = jax.jit(lambda p: scores.grasp(p, masks.ones(p), None, scores.Context(p, small)))(params)
  np.testing.assert_allclose(_flat(s), flat * hg, rtol=2e-3, atol=1e-7)


def test_synflow_matches_its_closed_form_on_a_linear_net():
  w1 = jnp.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 1.0]])  # 3 inputs -> 2 hidden
  w2 = jnp.array([[2.0], [-4.0]])                         # 2 hidden -> 1 output
  params = {"a": w1, "b": w2}
  net = scores.Network(apply=lambda p, x: x @ p["a"] @ p["b"], loss=None, input_shape=(3,))
  s = scores.synflow(params, masks.ones(params), None, scores.Context(params, net))
  a, b = jnp.abs(w1), jnp.abs(w2)
  # R = 1^T |W1| |W2|: dR/d|W1|_ij = |W2|_j, dR/d|W2|_j = sum_i |W1|_ij
  np.testing.assert_allclose(s["a"], a * b[:, 0][None, :])
  np.testing.assert_allclose(s["b"], b * a.sum(0)[:, None])


@pytest.mark.parametrize("name", ["snip", "grasp", "synflow", "magnitude", "random"])
@pytest.mark.parametrize("scope", [pruning.LAYERWISE, pruning.GLOBAL])
def test_exact_density_and_pruned_weights_zero(setup, name, scope):
  params, roles, net = setup
  mask = at_init.prune_at_init(name, params, masks.ones(params), roles, 0.036, scope, net,
                                jax.random.key(1))
  sizes = layer_sizes(params, roles)
  kept = {k: int(v) for k, v in layer_counts(mask, roles).items()}
  if scope == pruning.LAYERWISE:
    assert kept == {k: round(0.036 * n) for k, n in sizes.items()}
  else:
    assert sum(kept.values()) == round(0.036 * sum(sizes.values()))
  masks.check(masks.apply(params, mask), mask, roles)  # pruned weights exactly zero
  assert all(bool(m.all()) for m, k in zip(jax.tree.leaves(mask), jax.tree.leaves(roles))
             if k == registry.FIXED)


def test_synflow_avoids_layer_collapse_where_one_shot_snip_global_may_not(setup):
  params, roles, net = setup
  mask = at_init.prune_at_init("synflow", params, masks.ones(params), roles, 0.01, pruning.GLOBAL, net)
  assert all(int(v) > 0 for v in layer_counts(mask, roles).values())


def test_inverted_scores_keep_the_complement(setup):
  params, roles, net = setup
  ones = masks.ones(params)
  top = at_init.prune_at_init("snip", params, ones, roles, 0.5, pruning.LAYERWISE, net)
  bottom = at_init.prune_at_init("snip", params, ones, roles, 0.5, pruning.LAYERWISE, net, invert=True)
  for t, b, k in zip(jax.tree.leaves(top), jax.tree.leaves(bottom), jax.tree.leaves(roles)):
    if k != registry.FIXED:
      assert not bool(jnp.any(t & b)) and int(t.sum()) == int(b.sum())


def test_bad_requests_are_one_line_errors(setup):
  params, roles, net = setup
  ones = masks.ones(params)
  with pytest.raises(pruning.PruningError, match="unknown pruning score 'nope'"):
    at_init.prune_at_init("nope", params, ones, roles, 0.5)
  with pytest.raises(pruning.PruningError, match="needs data"):
    at_init.prune_at_init("snip", params, ones, roles, 0.5,
                           net=scores.Network(net.apply, net.loss, net.input_shape))
  with pytest.raises(pruning.PruningError, match="needs the network"):
    at_init.prune_at_init("synflow", params, ones, roles, 0.5)
  with pytest.raises(pruning.PruningError, match="not reachable"):
    at_init.prune_at_init("synflow", params, ones, roles, 1e-5, net=net)
  with pytest.raises(pruning.PruningError, match="density must be in"):
    at_init.prune_at_init("magnitude", params, ones, roles, 0.0)


def test_the_comparison_binary_runs_every_criterion_and_draws_the_cost(binaries, tmp_path):
  from conftest import shared_data_dir
  if shared_data_dir() is None:
    pytest.skip("needs prepared MNIST")
  (tmp_path / "scoring_cost.jsonl").write_text(  # as benchmarks.criteria prints it
      '{"bench": "criterion_cost", "criterion": "snip", "cost_in_train_steps": 9.5}\n')
  ran = binaries("experiments.criteria", [f"--workdir={tmp_path}", "--preset=lenet_quick", "--steps=100",
                                          "--trials=1", "--densities=0.8,0.64", "--criteria=imp,oneshot,snip",
                                          "--set.model_kwargs.width=0.25", "--set.validation_size=1000",
                                          "--noreport"],  # the overlaid report: test_report.py
                 env={"LTJAX_DATA_DIR": str(shared_data_dir())}, timeout=400)
  assert ran.rc == 0, ran.stderr[-2000:]
  import json
  points = json.loads((tmp_path / "report" / "cost.json").read_text())
  by = {(p["criterion"], round(p["density"], 2)) for p in points}
  assert {("oneshot", 0.8), ("oneshot", 0.64), ("snip", 0.8), ("snip", 0.64)} <= by
  imp = [p for p in points if p["criterion"] == "imp"]
  assert all(p["finding_model_steps"] == 100 * p["round"] for p in imp)  # every earlier round
  assert min(p["density"] for p in imp) <= 0.64 * 1.02
  assert all(p["finding_model_steps"] == 0 and p["scoring_steps"] == 9.5 for p in points if p["criterion"] == "snip")
  assert all(p["scoring_steps"] == 0 for p in points if p["criterion"] != "snip")
  assert all(p["finding_model_steps"] == 100 for p in points if p["criterion"] == "oneshot")
  # Early-bird's cost (the step its mask settled) is checked in test_experiment.py.
  recs = [json.loads(line) for line in (tmp_path / "snip" / "results.jsonl").read_text().splitlines()]
  assert {r["kind"] for r in recs if r["round"]} == {"ticket", "reinit", "random_mask", "inverted"}
  assert (tmp_path / "report" / "cost.png").stat().st_size > 10_000
  for name in ("imp", "oneshot", "snip"):  # every criterion ran the --set fields
    config = json.loads((tmp_path / name / "config.json").read_text())["config"]
    assert config["model_kwargs"] == {"width": 0.25} and config["validation_size"] == 1000
  assert not (tmp_path / "report" / "summary.md").exists()  # --noreport


@pytest.mark.parametrize("args, name", [
    (["--set.prune.nope=1"], "prune.nope"),
    (["--set.train.lr=-1"], "train.lr"),
    (["--set.model_kwargs.width=0"], "width"),
    (["--set.dataset=no_such_dataset"], "no_such_dataset"),
    (["--set.=3"], "--set.=3"),
    (["--set.trials"], "--set.trials"),
    (["--set.controls=(reinit,)"], "--set.controls"),  # each criterion sets its own
    (["--set.prune.densities=(0.5,)"], "--densities"),
])
def test_a_bad_set_field_is_one_line_before_any_criterion_runs(args, name, binaries, tmp_path):
  ran = binaries("experiments.criteria", [f"--workdir={tmp_path / 'w'}", "--criteria=imp,snip", *args],
                 env={"LTJAX_DATA_DIR": "/nonexistent"})
  assert_refused(ran, name, [tmp_path / "w"])


def test_frankle_2021_baselines_prune_at_init_by_random_and_magnitude_scores():
  from ltjax import configs
  from ltjax.runs import comparison
  base = configs.get("lenet_quick")
  rand = comparison.config_for(base, "random_init", (0.5, 0.2), {})
  assert (rand.prune.mode, rand.prune.score, rand.prune.densities) == ("at_init", "random", (0.5, 0.2))
  assert rand.controls == ()  # reinit, shuffled or inverted, a random mask on a random init is one again
  mag = comparison.config_for(base, "magnitude_init", (0.5,), {})
  assert (mag.prune.mode, mag.prune.score) == ("at_init", "magnitude") and "inverted" in mag.controls


def test_scoring_costs_name_the_baselines_at_init_by_their_scores(tmp_path):
  path = tmp_path / comparison.SCORING_COST
  path.write_text('{"bench": "criterion_cost", "criterion": "random", "cost_in_train_steps": 8.0}\n'
                  '{"bench": "criterion_cost", "criterion": "synflow", "cost_in_train_steps": 352.0}\n')
  assert comparison.scoring_costs(path) == {"random": 8.0, "random_init": 8.0, "synflow": 352.0}
  assert comparison.scoring_costs(tmp_path / "absent.jsonl") == {}
  path.write_text("not json\n")
  with pytest.raises(ValueError, match="not benchmarks.criteria's output"):
    comparison.scoring_costs(path)
