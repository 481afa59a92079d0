"""The version, in one place: pyproject.toml reads it, ``landscape.__version__`` re-exports it, and a
module that records it in a file imports it from here, not from the package's ``__init__`` (which
imports the public API, so importing it from there would close an import cycle)."""

__version__ = "0.1.0"
