"""One module per command: a config in, the engine, the files and the figures wired together."""
