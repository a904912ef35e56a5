"""ltjax: lottery-ticket experiments as pure functions over JAX pytrees."""

__version__ = "0.1.0"
