r"""Many tickets, whole processes: `benchmarks.one_ticket` with 15 tickets by default.

  python -m benchmarks.many_tickets --steps=5000 --repeats=3

ltjax trains the tickets in one compiled program; the hand-written loop trains them one after
another in one process. See `benchmarks.one_ticket` for what is timed and reported.
"""

from absl import flags

from benchmarks import one_ticket
from experiments import cli

if __name__ == "__main__":
  flags.FLAGS.set_default("tickets", 15)
  cli.run(one_ticket.main)
