"""The compiled many-ticket trainer: the masked step, scanned intervals, evaluation, early stop,
the ticket axis over a device mesh, and how JAX starts (devices, hosts, compilation cache)."""
