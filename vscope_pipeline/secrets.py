"""A string wrapper that keeps secrets out of logs, reprs, exceptions and Dagster metadata."""

from __future__ import annotations


class Secret:
    """A secret value (API secret, consumer key, metrics token).

    `str()` and `repr()` are masked, so formatting a Secret into a message or a log line
    never leaks it; call `reveal()` only where the value goes on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the value to disk (Dagster IO managers, multiprocessing).
        raise TypeError("a Secret cannot be pickled: pass its settings name instead")
