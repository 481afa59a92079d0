"""One module per command: a config in, the engine, the files and the figures wired together.

``experiment`` builds the model and data the commands share (from a config or a checkpoint)."""
