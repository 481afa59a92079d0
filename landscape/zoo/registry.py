"""Name → object registries and loading of user callables (``file.py:fn`` / ``pkg.mod:fn``)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from landscape.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of entries; adding one is one decorated definition."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorator

    def add(self, name: str, entry: T) -> T:
        return self.register(name)(entry)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}"
                " (or a user spec 'path/to/file.py:function' / 'package.module:function')"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def is_user_spec(name: str) -> bool:
    """True for ``path/to/file.py:function`` and ``package.module:function`` specs."""
    return ":" in name


@contextlib.contextmanager
def _folder_on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while a user file is imported, as Python runs a script: the file
    may import the modules beside it (``from helpers import Block``)."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)  # the first occurrence: the one inserted above


def load_callable(spec: str) -> Callable[..., object]:
    """Import the callable named by ``path/to/file.py:function`` or ``package.module:function``.

    A file's folder is on the import path while the file is imported, so its top-level imports find
    the modules beside it.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise RegistryError(f"user spec {spec!r} must look like 'file.py:function' or 'pkg.mod:function'")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            where = f" in {str(Path.cwd())!r}" if not path.is_absolute() else ""
            raise RegistryError(f"user file {str(path)!r} (from {spec!r}) does not exist{where}; a relative path is read "
                                "from the current folder: run where it was given, or name the file again "
                                "(--model/--data path/to/file.py:function)")
        module_name = f"landscape_user_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(module_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise RegistryError(f"cannot import user file {str(path)!r}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            try:
                with _folder_on_path(path.resolve().parent):
                    loader_spec.loader.exec_module(module)
            except Exception as err:
                del sys.modules[module_name]
                raise RegistryError(f"importing {str(path)!r} failed: {type(err).__name__}: {err}") from err
    else:
        try:
            module = importlib.import_module(target)
        except Exception as err:
            raise RegistryError(f"cannot import module {target!r} (from {spec!r}): {err}") from err
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise RegistryError(f"{target!r} has no callable named {attr!r}")
    return fn  # type: ignore[no-any-return]
