import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax import parallel


def test_stack_unstack_take_roundtrip():
  trees = [{"a": jnp.full((2,), i), "b": jnp.array(i * 1.0)} for i in range(3)]
  s = parallel.stack(trees)
  assert parallel.num_tickets(s) == 3
  for i, t in enumerate(parallel.unstack(s)):
    np.testing.assert_array_equal(t["a"], trees[i]["a"])
  np.testing.assert_array_equal(parallel.take(s, jnp.array([2, 0]))["b"], [2.0, 0.0])


@pytest.mark.parametrize("ticket_batch", [None, 1, 2, 3])
def test_ticket_map_strategies_agree(ticket_batch):
  xs = jnp.arange(12.0).reshape(6, 2)
  shared = jnp.array([10.0, 100.0])
  fn = lambda x, s: jnp.dot(x, s) + jnp.sum(x)  # noqa: E731
  got = jax.jit(parallel.ticket_map(fn, (0, None), ticket_batch))(xs, shared)
  np.testing.assert_allclose(got, xs @ shared + xs.sum(1))


def test_ticket_map_rejects_bad_settings():
  with pytest.raises(ValueError):
    parallel.ticket_map(lambda x: x, (1,))
  with pytest.raises(ValueError):
    parallel.ticket_map(lambda x: x, (0,), ticket_batch=0)
