"""Files: checkpoints, surface/direction/trajectory files, the run folder, export, atomic writes."""
