"""A run bound to a workdir: config validation, the writers (records, curves and masks,
TensorBoard, checkpoints, progress), resume, and studies and sweeps."""
