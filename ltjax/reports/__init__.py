"""Reads workdirs (never trains, never imports the trainer or the models): figures, tables and the
report. Layered without a circle: analysis (reading a workdir, theta_0 from its checkpoints) <-
figures (a run's numbers, shared styling) <- mask_figures, stability_figures <- summary (the
report and summary.md)."""
