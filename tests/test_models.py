"""Tests for the registered networks: exact prunable-weight counts, roles, shapes, BN, dropout.

Counts and shapes use `jax.eval_shape` (nothing is materialised); forward passes run on tiny
inputs. The expected counts are written out layer by layer from the architectures' definitions
(the paper's table and open_lth's plans), independently of the model code.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltjax import data, models
from ltjax.core import masks
from ltjax.engine import parallel, train
from ltjax.models import registry, vgg

CIFAR = (32, 32, 3)


def k3(cin: int, cout: int) -> int:
  """Weights of a 3x3 conv kernel."""
  return 3 * 3 * cin * cout


def abstract_params(name: str, shape=CIFAR, **overrides):
  spec = models.get(name)
  module = spec.build(**overrides)
  variables = jax.eval_shape(lambda k: module.init(k, jnp.zeros((1, *shape)), train=False),
                             jax.random.key(0))
  return spec, module, variables


# Conv-N: conv stack, then fc1 on the flattened (32 / 2^pools)^2 * channels map, fc2, out.
CONV2 = k3(3, 64) + k3(64, 64) + 16 * 16 * 64 * 256 + 256 * 256 + 256 * 10
CONV4 = (k3(3, 64) + k3(64, 64) + k3(64, 128) + k3(128, 128)
         + 8 * 8 * 128 * 256 + 256 * 256 + 256 * 10)
CONV6 = (k3(3, 64) + k3(64, 64) + k3(64, 128) + k3(128, 128) + k3(128, 256) + k3(256, 256)
         + 4 * 4 * 256 * 256 + 256 * 256 + 256 * 10)
# VGG (open_lth cifar_vgg plans): 3x3 convs, then one 512 -> 10 output layer.
VGG11 = (k3(3, 64) + k3(64, 128) + k3(128, 256) + k3(256, 256) + k3(256, 512) + k3(512, 512)
         + 2 * k3(512, 512) + 512 * 10)
VGG16 = (k3(3, 64) + k3(64, 64) + k3(64, 128) + k3(128, 128) + k3(128, 256) + 2 * k3(256, 256)
         + k3(256, 512) + 2 * k3(512, 512) + 3 * k3(512, 512) + 512 * 10)
VGG19 = (k3(3, 64) + k3(64, 64) + k3(64, 128) + k3(128, 128) + k3(128, 256) + 3 * k3(256, 256)
         + k3(256, 512) + 3 * k3(512, 512) + 4 * k3(512, 512) + 512 * 10)


def resnet20_count(w: int) -> int:
  """Stem, 3 stages x 3 blocks x 2 convs, 1x1 projections entering stages 2 and 3, output."""
  a, b, c = 16 * w, 32 * w, 64 * w
  stem = k3(3, a)
  stage1 = 3 * 2 * k3(a, a)
  stage2 = k3(a, b) + k3(b, b) + a * b + 2 * 2 * k3(b, b)
  stage3 = k3(b, c) + k3(c, c) + b * c + 2 * 2 * k3(c, c)
  return stem + stage1 + stage2 + stage3 + c * 10


RESNET20 = resnet20_count(1)


def test_written_out_counts_match_the_papers_numbers():
  assert (CONV2, CONV4, CONV6) == (4_300_992, 2_425_024, 2_261_184)
  assert RESNET20 == 432 + 13_824 + 51_200 + 204_800 + 640 == 270_896  # "~270K"
  assert (VGG11, VGG16, VGG19) == (9_222_848, 14_715_584, 20_024_000)  # VGG-19 "~20.0M"
  assert 784 * 300 + 300 * 100 + 100 * 10 == 266_200  # LeNet-300-100


@pytest.mark.parametrize("name,shape,expected", [
    ("lenet_300_100", (28, 28, 1), 784 * 300 + 300 * 100 + 100 * 10),
    ("conv2", CIFAR, CONV2), ("conv4", CIFAR, CONV4), ("conv6", CIFAR, CONV6),
    ("conv2_dropout", CIFAR, CONV2), ("conv6_dropout", CIFAR, CONV6),
    ("resnet20", CIFAR, RESNET20),
    ("vgg11", CIFAR, VGG11), ("vgg16", CIFAR, VGG16), ("vgg19", CIFAR, VGG19),
])
def test_prunable_weight_counts(name, shape, expected):
  spec, _, variables = abstract_params(name, shape)
  assert masks.size(variables["params"], spec.layer_roles(variables["params"])) == expected


def test_resnet20_width_multiplier_count():
  spec, _, variables = abstract_params("resnet20", width=2)
  params = variables["params"]
  assert masks.size(params, spec.layer_roles(params)) == resnet20_count(2)
  assert params["conv"]["kernel"].shape == (3, 3, 3, 32)
  assert params["out"]["kernel"].shape == (128, 10)


def _kinds_by_path(spec, params):
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  roles = jax.tree.leaves(spec.layer_roles(params))
  return [(masks.path_str(path), leaf, kind) for (path, leaf), kind in zip(flat, roles)]


@pytest.mark.parametrize("name", ["conv2", "conv6_dropout", "resnet20", "vgg11", "vgg19"])
def test_layer_kinds(name):
  spec, _, variables = abstract_params(name)
  rows = _kinds_by_path(spec, variables["params"])
  outputs = [path for path, _, kind in rows if kind == registry.OUTPUT]
  assert outputs == ["out/kernel"]
  for path, leaf, kind in rows:
    leaf_name = path.split("/")[-1]
    if leaf_name != "kernel":  # biases, BN scale/bias
      assert kind == registry.FIXED, path
    elif path.startswith("out/"):
      assert leaf.ndim == 2
    elif leaf.ndim == 4:
      assert kind == registry.CONV, path
    else:
      assert kind == registry.FC, path
  bn = [(p, k) for p, _, k in rows if p.split("/")[-2].startswith(("bn", "shortcut_bn"))]
  if name in ("resnet20", "vgg11", "vgg19"):
    assert bn and all(k == registry.FIXED for _, k in bn)
  # Batch statistics are a separate collection, never in params.
  assert ("batch_stats" in variables) == name.startswith(("resnet", "vgg"))


def test_resnet20_layout():
  spec, _, variables = abstract_params("resnet20")
  params = variables["params"]
  roles = spec.layer_roles(params)
  assert sorted(k for k in params if k.startswith("stage")) == sorted(
      f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2, 3))
  # Projections only where the shape changes; they are pruned like any conv.
  with_proj = sorted(k for k, v in params.items() if "shortcut_conv" in v)
  assert with_proj == ["stage2_block1", "stage3_block1"]
  assert params["stage2_block1"]["shortcut_conv"]["kernel"].shape == (1, 1, 16, 32)
  assert roles["stage3_block1"]["shortcut_conv"]["kernel"] == registry.CONV
  assert "bias" not in params["conv"]  # convs before BN have no bias
  assert roles["out"]["bias"] == registry.FIXED


@pytest.mark.parametrize("name,shape", [
    ("conv2", CIFAR), ("conv4", CIFAR), ("conv6", CIFAR), ("conv4_dropout", CIFAR),
    ("resnet20", CIFAR), ("resnet20", (8, 8, 3)), ("vgg11", CIFAR), ("vgg16", CIFAR),
    ("vgg19", CIFAR), ("vgg19", (16, 16, 3)),
])
def test_output_shapes(name, shape):
  _, module, variables = abstract_params(name, shape)
  x = jnp.zeros((2, *shape))
  out = jax.eval_shape(lambda v: module.apply(v, x, train=False), variables)
  chex.assert_shape(out, (2, 10))
  rngs = {"dropout": jax.random.key(1)}
  out, _ = jax.eval_shape(
      lambda v: module.apply(v, x, train=True, rngs=rngs, mutable=["batch_stats"]), variables)
  chex.assert_shape(out, (2, 10))


@pytest.mark.parametrize("name", ["conv2", "resnet20", "vgg11"])
def test_num_classes(name):
  _, module, variables = abstract_params(name, num_classes=100)
  out = jax.eval_shape(lambda v: module.apply(v, jnp.zeros((2, *CIFAR)), train=False), variables)
  chex.assert_shape(out, (2, 100))


def _init(module, shape, seed=0):
  """Concrete variables, computed eagerly: for one call on a small net that beats compiling."""
  return module.init(jax.random.key(seed), jnp.zeros((1, *shape)), train=False)


def _host_variables(module, shape, seed=0):
  """Variables of `module`'s shapes drawn on the host (normal(0, 0.1) weights; flax's initial
  batch statistics, mean 0 and variance 1), for tests of a model's behaviour rather than of its
  initializers: XLA:CPU takes about half a second per kernel shape to compile a random draw."""
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "batch_stats" in name:
      return jnp.full(leaf.shape, 1.0 if "var" in name else 0.0, leaf.dtype)
    return jnp.asarray(rng.normal(0.0, 0.1, leaf.shape).astype(leaf.dtype))
  return jax.tree_util.tree_map_with_path(fill, abstract)


@pytest.mark.parametrize("name,shape", [("resnet20", (8, 8, 3)), ("small_vgg", (8, 8, 3))])
def test_batch_norm_train_and_eval(name, shape):
  if name == "small_vgg":  # the VGG code path at a few thousand weights (VGG-11 has 9.2M)
    module = vgg.VGG(plan=(8, vgg.POOL, 16, 16, vgg.POOL, 32))
  else:
    module = models.get(name).build()
  variables = _host_variables(module, shape)
  stats = variables["batch_stats"]
  x = jax.random.normal(jax.random.key(1), (2, *shape)) * 2.0 + 1.0

  train_fn = lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"])  # noqa: E731
  eval_fn = lambda v, x: module.apply(v, x, train=False)  # noqa: E731

  logits, updates = train_fn(variables, x)
  chex.assert_shape(logits, (2, 10))
  assert set(updates) == {"batch_stats"}
  chex.assert_trees_all_equal_shapes(updates["batch_stats"], stats)
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                         updates["batch_stats"], stats))
  assert all(changed)  # every running mean and variance moved

  # Eval mode uses the running statistics: deterministic and independent of the rest of the batch.
  out1, out2 = eval_fn(variables, x), eval_fn(variables, x)
  chex.assert_trees_all_equal(out1, out2)
  chex.assert_trees_all_close(eval_fn(variables, x[:1]), out1[:1], rtol=1e-5, atol=1e-5)
  assert not np.allclose(np.asarray(logits), np.asarray(out1))  # batch vs running statistics


def test_bn_scale_init_follows_open_lth_and_is_overridable():
  module = models.get("resnet20").build()
  params = _init(module, (8, 8, 3))["params"]
  scale = np.asarray(params["bn"]["scale"])
  assert np.all((scale >= 0) & (scale < 1)) and np.std(scale) > 0  # U[0, 1)
  np.testing.assert_array_equal(np.asarray(params["bn"]["bias"]), 0.0)
  module = models.get("resnet20").build(bn_init="ones")
  params = _init(module, (8, 8, 3))["params"]
  np.testing.assert_array_equal(np.asarray(params["stage1_block1"]["bn1"]["scale"]), 1.0)
  abstract_params("vgg11", bn_init="ones")  # the field exists on VGG too
  with pytest.raises(ValueError, match="bn_init"):
    abstract_params("vgg11", bn_init="zeros")


def test_conv_init_glorot_and_zero_biases():
  module = models.get("conv2").build()
  params = _init(module, (8, 8, 3))["params"]
  for layer in ("conv1", "conv2", "fc1", "fc2", "out"):
    np.testing.assert_array_equal(np.asarray(params[layer]["bias"]), 0.0)
  kernel = np.asarray(params["conv2"]["kernel"])  # 3x3x64x64: fan_in = fan_out = 576
  assert abs(kernel.std() - np.sqrt(2.0 / (576 + 576))) < 0.1 * np.sqrt(2.0 / 1152)


@pytest.mark.parametrize("name,overrides", [("conv2", {"dropout": 0.5}), ("conv2_dropout", {})])
def test_dropout_only_in_train_mode(name, overrides):
  shape = (8, 8, 3)
  module = models.get(name).build(**overrides)
  assert module.dropout == 0.5
  variables = _host_variables(module, shape)
  x = jax.random.normal(jax.random.key(1), (2, *shape))
  apply = lambda x, train, key: module.apply(variables, x, train=train,  # noqa: E731
                                             rngs={"dropout": key})
  k1, k2 = jax.random.key(2), jax.random.key(3)
  eval1, eval2 = apply(x, False, k1), apply(x, False, k2)
  chex.assert_trees_all_equal(eval1, eval2)
  chex.assert_trees_all_equal(eval1, module.apply(variables, x, train=False))  # no rng needed
  train1, train1b, train2 = apply(x, True, k1), apply(x, True, k1), apply(x, True, k2)
  chex.assert_trees_all_equal(train1, train1b)
  assert not np.allclose(np.asarray(train1), np.asarray(train2))
  assert not np.allclose(np.asarray(train1), np.asarray(eval1))


def test_no_dropout_by_default():
  shape = (8, 8, 3)
  module = models.get("conv2").build()
  variables = _host_variables(module, shape)
  x = jax.random.normal(jax.random.key(1), (2, *shape))
  chex.assert_trees_all_close(module.apply(variables, x, train=True),
                              module.apply(variables, x, train=False))


def test_masked_training_step_resnet20():
  """Trainer on 2 stacked ResNet-20 tickets: BN statistics move, pruned weights stay exactly 0."""
  shape, k = (8, 8, 3), 2
  dataset = data.synthetic(num_train=32, num_test=8, validation_size=8, shape=shape)
  spec = models.get("resnet20")
  module = spec.build(num_classes=dataset.num_classes)
  keys = jax.random.split(jax.random.key(0), k)
  variables = parallel.stack([_host_variables(module, shape, seed=i) for i in range(k)])
  params, model_state = variables["params"], {"batch_stats": variables["batch_stats"]}
  roles = spec.layer_roles(jax.tree.map(lambda a: a[0], params))
  # Half of every conv kernel pruned at random (host-side: the test is of the model, not pruning).
  rng = np.random.default_rng(0)
  mask = jax.tree.map(lambda p, kind: jnp.asarray(rng.random(p.shape) < 0.5 if kind == registry.CONV
                                                  else np.ones(p.shape, bool)), params, roles)
  for t in range(k):
    density = float(masks.density(parallel.take(mask, t), roles))
    assert 0.45 < density < 0.55
  assert any(np.any(np.asarray(p)[~np.asarray(m)] != 0.0)
             for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)))

  trainer = train.Trainer(module, optax.sgd(0.05, momentum=0.9), batch_size=16, eval_batch_size=8)
  states = trainer.init_states(params, mask, model_state, keys)
  params0 = jax.tree.map(np.asarray, states.params)
  stats0 = jax.tree.map(np.asarray, states.model_state["batch_stats"])
  states, _, curves = trainer.train(states, dataset, steps=2, eval_every=2)

  chex.assert_shape(curves.val_loss, (1, k))
  assert np.all(np.isfinite(np.asarray(curves.train_loss)))
  stats = states.model_state["batch_stats"]
  chex.assert_trees_all_equal_shapes(stats, stats0)
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != b)), stats, stats0)
  assert all(jax.tree.leaves(moved))
  for p, p0, m in zip(jax.tree.leaves(states.params), jax.tree.leaves(params0),
                      jax.tree.leaves(states.mask)):
    p, m = np.asarray(p), np.asarray(m)
    assert np.all(p[~m] == 0.0)
    assert np.all(p0[~m] == 0.0)
  conv1 = states.params["stage2_block1"]["conv1"]["kernel"]
  conv1_mask = np.asarray(states.mask["stage2_block1"]["conv1"]["kernel"])
  assert np.any(np.asarray(conv1)[conv1_mask] !=
                params0["stage2_block1"]["conv1"]["kernel"][conv1_mask])  # survivors trained
