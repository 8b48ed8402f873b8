"""Every public module, class, function and method of `ilp_paychan` says what it is for.

"Public" is what a user can reach without an underscore: the names in a module's `__all__`, or,
in a module without one, the classes and functions it defines whose names do not start with `_`,
in every module whose dotted path has no `_`-prefixed part. For a class that means its own
methods and properties not starting with `_`. A method overriding a documented method of a base
class inherits that docstring (as `help()` shows it); a class's own docstring is never inherited,
and the text a dataclass or NamedTuple makes up from its fields does not count.

All missing docstrings are collected and reported in one failure, with the file and line of each.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import types
from collections.abc import Iterator
from pathlib import Path

import ilp_paychan

REPO = Path(__file__).resolve().parent.parent


def public_modules(package: types.ModuleType) -> Iterator[types.ModuleType]:
    """The package and every submodule without a `_`-prefixed part in its dotted name."""
    yield package
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def _has_own_doc(obj: object) -> bool:
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return False
    if inspect.isclass(obj):
        made_up = dataclasses.is_dataclass(obj) or (
            issubclass(obj, tuple) and hasattr(obj, "_fields")
        )
        if made_up and doc.startswith(obj.__name__ + "("):
            return False
    return True


def _method_doc(cls: type, name: str, member: object) -> str | None:
    """The docstring of a method or property, inherited from a base class's same-named one."""
    for klass in cls.__mro__:
        if klass is object:
            break
        candidate = vars(klass).get(name)
        if candidate is None:
            continue
        if isinstance(candidate, staticmethod | classmethod):
            candidate = candidate.__func__
        if isinstance(candidate, property):
            candidate = candidate.fget
        doc = getattr(candidate, "__doc__", None)
        if isinstance(doc, str) and doc.strip():
            return doc
    return None


def _where(obj: object) -> str:
    try:
        source = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        _, line = inspect.getsourcelines(obj)  # type: ignore[arg-type]
    except (TypeError, OSError):
        return "?"
    if source is None:
        return "?"
    try:
        relative = Path(source).resolve().relative_to(REPO).as_posix()
    except ValueError:
        relative = source
    return f"{relative}:{line}"


def _members(module: types.ModuleType) -> Iterator[tuple[str, object]]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        ]
    for name in names:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            yield name, value


def missing_docstrings(modules: list[types.ModuleType]) -> list[tuple[str, str]]:
    """(where, what) for every public module, class, function or method without a docstring."""
    missing: list[tuple[str, str]] = []
    seen: set[int] = set()
    for module in modules:
        if not _has_own_doc(module):
            missing.append((_where(module), f"module {module.__name__}"))
        for _name, obj in _members(module):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            qualified = f"{obj.__module__}.{obj.__qualname__}"  # type: ignore[attr-defined]
            if inspect.isfunction(obj):
                if not _has_own_doc(obj):
                    missing.append((_where(obj), f"function {qualified}"))
                continue
            assert isinstance(obj, type)
            if not _has_own_doc(obj):
                missing.append((_where(obj), f"class {qualified}"))
            if issubclass(obj, BaseException):
                continue  # an error class's methods are Exception's
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                target = member
                if isinstance(target, staticmethod | classmethod):
                    target = target.__func__
                if isinstance(target, property):
                    target = target.fget
                if not inspect.isfunction(target):
                    continue
                if _method_doc(obj, attr, member) is None:
                    missing.append((_where(target), f"method {qualified}.{attr}"))
    return sorted(missing, key=_order)


def _order(item: tuple[str, str]) -> tuple[str, int, str]:
    path, _, line = item[0].rpartition(":")
    return path, int(line) if line.isdigit() else 0, item[1]


def test_every_public_name_has_a_docstring() -> None:
    missing = missing_docstrings(list(public_modules(ilp_paychan)))
    assert not missing, "public names without a docstring:\n" + "\n".join(
        f"  {where}  {what}" for where, what in missing
    )


def test_the_scan_finds_what_is_missing() -> None:
    """The scanner on a planted module: it must flag exactly the undocumented names."""
    planted = types.ModuleType("planted")

    def documented() -> None:
        """Here."""

    def bare() -> None:
        pass

    class Base:
        """A base."""

        def run(self) -> None:
            """Runs."""

    class Child(Base):
        """A child."""

        def run(self) -> None:  # inherits Base.run's docstring
            pass

        def extra(self) -> None:
            pass

        @property
        def size(self) -> int:
            return 0

        def _private(self) -> None:
            pass

    class Bare:
        pass

    @dataclasses.dataclass
    class Record:
        value: int

    for obj in (documented, bare, Base, Child, Bare, Record):
        obj.__module__ = "planted"
        setattr(planted, obj.__name__, obj)
    found = sorted(what for _, what in missing_docstrings([planted]))
    prefix = "planted.test_the_scan_finds_what_is_missing.<locals>."
    assert found == [
        f"class {prefix}Bare",
        f"class {prefix}Record",
        f"function {prefix}bare",
        f"method {prefix}Child.extra",
        f"method {prefix}Child.size",
        "module planted",
    ]
