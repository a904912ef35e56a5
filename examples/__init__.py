"""Runnable examples of ltjax on a researcher's own network, data and pruning score."""
