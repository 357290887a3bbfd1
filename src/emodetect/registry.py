"""Name-to-factory registries for detectors, classifiers and training architectures.

A registry is one dict from a name to a small `BackendSpec`. Built-in backends register with a decorator.
Third-party packages register through a Python entry point group. The group is read the first time a name is
looked up or listed, so `import emodetect` stays fast.

A third-party package adds a detector like this in its `pyproject.toml`::

    [project.entry-points."emodetect.detectors"]
    mydetector = "my_package.module:MyDetector"

The entry point's object is the factory: a class or function that takes keyword arguments and returns the
backend.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, Optional, TypeVar

from emodetect.errors import UnknownBackendError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class BackendSpec(Generic[T]):
    """A registered backend: its name, the callable that builds it, and one line about it."""

    name: str
    factory: Callable[..., T]
    description: str = ""
    source: str = "emodetect"


class Registry(Generic[T]):
    """Backends of one kind, by name.

    Args:
        kind: Human-readable kind used in messages, such as `"detector"`.
        entry_point_group: Entry point group that third-party packages use, or `None` for none.
        base_class: Class that every built backend must be an instance of, or `None` to accept anything.
    """

    def __init__(self, kind: str, entry_point_group: Optional[str] = None, base_class: Optional[type] = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.base_class = base_class
        self._specs: dict[str, BackendSpec[T]] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, description: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Return a decorator that registers a factory under `name`.

        Raises:
            ValueError: `name` is empty or already registered.
        """

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(BackendSpec(name=name, factory=factory, description=description or _first_line(factory)))
            return factory

        return decorator

    def add(self, spec: BackendSpec[T]) -> None:
        """Register a spec.

        Raises:
            ValueError: The name is empty, contains whitespace, or is already registered.
        """
        if not spec.name or any(character.isspace() for character in spec.name):
            raise ValueError(f"Expected a {self.kind} name without spaces, received {spec.name!r}.")
        if spec.name in self._specs:
            raise ValueError(
                f"A {self.kind} named {spec.name!r} is already registered (from {self._specs[spec.name].source}). "
                f"Choose another name."
            )
        self._specs[spec.name] = spec

    def names(self, pattern: str = "*") -> list[str]:
        """Return the sorted registered names that match a shell-style pattern such as `"ss*"`."""
        self._load_entry_points()
        return sorted(name for name in self._specs if fnmatch.fnmatchcase(name, pattern))

    def get(self, name: str) -> BackendSpec[T]:
        """Return the spec registered under `name`.

        Raises:
            UnknownBackendError: No backend of this kind has that name; the message lists the valid names.
        """
        if name not in self._specs:
            self._load_entry_points()
        if name not in self._specs:
            valid = ", ".join(repr(known) for known in sorted(self._specs)) or "none"
            raise UnknownBackendError(f"Unknown {self.kind} {name!r}. Registered {self.kind}s: {valid}.")
        return self._specs[name]

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the backend registered under `name`, passing `kwargs` to its factory.

        Raises:
            UnknownBackendError: No backend of this kind has that name.
            TypeError: The factory, usually a plugin's, returned an object that is not a `base_class`.
        """
        backend = self.get(name).factory(**kwargs)
        if self.base_class is not None and not isinstance(backend, self.base_class):
            raise TypeError(
                f"The {self.kind} factory registered as {name!r} returned {type(backend).__name__}, "
                f"expected a {self.base_class.__name__} subclass."
            )
        return backend

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True

        for entry_point in metadata.entry_points(group=self.entry_point_group):
            if not entry_point.name or any(character.isspace() for character in entry_point.name):
                logger.warning("Ignoring %s entry point %r: names must not contain spaces.", self.kind, entry_point.name)
                continue
            if entry_point.name in self._specs:
                logger.warning(
                    "Ignoring %s entry point %r from %r: the name is already registered.",
                    self.kind,
                    entry_point.name,
                    entry_point.value,
                )
                continue
            try:
                factory = entry_point.load()
            except Exception as error:  # A broken plugin must not break the other backends.
                logger.warning("Cannot load %s entry point %r (%s): %s", self.kind, entry_point.name, entry_point.value, error)
                continue
            self._specs[entry_point.name] = BackendSpec(
                name=entry_point.name,
                factory=factory,
                description=_first_line(factory),
                source=f"entry point {entry_point.value}",
            )
            logger.debug("Registered %s %r from entry point %s", self.kind, entry_point.name, entry_point.value)


def _first_line(factory: Callable[..., Any]) -> str:
    doc = getattr(factory, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
