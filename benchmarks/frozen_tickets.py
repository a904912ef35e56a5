"""What a ticket past its budget costs (a per-ticket last step: Scratch-B's other tickets, a shorter
point beside a longer one): 4 LeNet-300-100 tickets x 500 Adam steps, all training against 3 of 4
standing still, one ticket at a time (`ticket_batch=1`: a real branch per ticket) and vmapped (a
step computed and discarded).

  python -m benchmarks.frozen_tickets

One JSON line per strategy: median seconds of 3 timed calls after a warm-up, and their ratio
(what to read on a shared machine). One ticket training and three standing still would cost
1/4 + 3/4 x 1/3 = 0.5 of four training (a forward pass for the reported loss).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from experiments import cli
from ltjax import models
from ltjax.engine import parallel, train

TICKETS, STEPS, BATCH = 4, 500, 60


def _timed(trainer, params, mask, keys, last_steps, x, y) -> float:
  schedule = (jnp.ones(TICKETS, jnp.float32), jnp.asarray(last_steps, jnp.int32))
  states = trainer.init_states(params, mask, jax.vmap(lambda _: {})(keys), keys, schedule)
  one = lambda i: lambda t: trainer.train_step(t, x, y, i)[0]  # noqa: E731
  run = jax.jit(lambda st: jax.lax.scan(
      lambda s, i: (parallel.ticket_map(one(i), (0,), trainer.ticket_batch)(s), None), st, jnp.arange(STEPS))[0])
  return common.median_seconds(lambda: run(states), 3)


def main(argv):
  del argv
  module = models.registry.get("lenet_300_100").build()
  rng = np.random.RandomState(0)
  x = jnp.asarray(rng.rand(BATCH, 28, 28, 1), jnp.float32)
  y = jnp.asarray(rng.randint(0, 10, BATCH), jnp.int32)
  keys = jax.random.split(jax.random.key(0), TICKETS)
  params = jax.vmap(lambda k: module.init({"params": k}, x[:1], train=False)["params"])(keys)
  mask = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
  for ticket_batch in (1, None):
    trainer = train.Trainer(module, optax.adam(1e-3), batch_size=BATCH, ticket_batch=ticket_batch)
    every = _timed(trainer, params, mask, keys, [STEPS] * TICKETS, x, y)
    frozen = _timed(trainer, params, mask, keys, [STEPS] + [0] * (TICKETS - 1), x, y)
    common.emit({"bench": "frozen_tickets", "ticket_batch": ticket_batch, "tickets": TICKETS, "steps": STEPS,
                 "all_training_seconds": every, "three_frozen_seconds": frozen, "ratio": frozen / every,
                 **common.device_info()})


if __name__ == "__main__":
  cli.run(main)
