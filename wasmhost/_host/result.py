"""What a run returns: values with named fields, not tuples (their order is no API).

They are frozen records built by keyword, written out here rather than made by
``dataclasses``: that module (and ``inspect``, which it imports) would cost every
``wasmhost run`` process ~5 ms, and making each class ~0.7 ms more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar

if TYPE_CHECKING:
    from .._errors import ErrorResult

T = TypeVar("T")


class _Frozen:
    """Refuses to be changed once made, as a frozen dataclass refuses."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    # pickle, copy and deepcopy: the fields, set again past __setattr__ (as a frozen
    # dataclass with slots does).
    def __getstate__(self) -> dict[str, object]:
        fields: tuple[str, ...] = type(self).__slots__
        return {name: getattr(self, name) for name in fields}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._set(**state)


class RunResult(_Frozen):
    """The outcome of a guest that ran to its end (a trap or a limit raises instead).

    ``exit_code`` is the guest's ``proc_exit`` status (0 when ``_start``
    returns); ``stdout``/``stderr`` hold what was captured (empty for streams
    that were not); ``values`` are the results of an ``invoke``-d function;
    ``fuel_consumed`` is set when the run was given fuel; ``elapsed`` is the
    wall time of instantiation and execution, in seconds, of which
    ``instantiate_time`` went to instantiation. Timings take no part in
    equality: two runs that did the same are equal.
    """

    __slots__ = (
        "elapsed",
        "exit_code",
        "fuel_consumed",
        "instantiate_time",
        "stderr",
        "stdout",
        "values",
    )
    __match_args__ = ()
    exit_code: int
    stdout: bytes
    stderr: bytes
    values: tuple[Any, ...]
    fuel_consumed: int | None
    elapsed: float
    instantiate_time: float

    def __init__(
        self,
        *,
        exit_code: int,
        stdout: bytes = b"",
        stderr: bytes = b"",
        values: tuple[Any, ...] = (),
        fuel_consumed: int | None = None,
        elapsed: float = 0.0,
        instantiate_time: float = 0.0,
    ) -> None:
        self._set(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            values=values,
            fuel_consumed=fuel_consumed,
            elapsed=elapsed,
            instantiate_time=instantiate_time,
        )

    def _outcome(self) -> tuple[object, ...]:
        return (self.exit_code, self.stdout, self.stderr, self.values, self.fuel_consumed)

    def __eq__(self, other: object) -> bool:
        if type(other) is not RunResult:
            return NotImplemented
        return self._outcome() == other._outcome()

    def __hash__(self) -> int:
        return hash(self._outcome())

    def __repr__(self) -> str:
        return (
            f"RunResult(exit_code={self.exit_code!r}, stdout={self.stdout!r}, "
            f"stderr={self.stderr!r}, values={self.values!r}, "
            f"fuel_consumed={self.fuel_consumed!r}, elapsed={self.elapsed!r}, "
            f"instantiate_time={self.instantiate_time!r})"
        )

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Called(NamedTuple):
    """What a guest's call gave: its results, its exit status (a component's run), and
    the ``err`` an invoked component function returned. (A tuple: made on every run.)"""

    values: tuple[Any, ...] = ()
    exit_code: int = 0
    error_result: ErrorResult | None = None


class OutputChunk(_Frozen):
    """A piece of a streaming run's output, as the guest wrote it."""

    __slots__ = ("data", "stream")
    __match_args__ = ()
    stream: Literal["stdout", "stderr"]
    data: bytes

    def __init__(self, *, stream: Literal["stdout", "stderr"], data: bytes) -> None:
        self._set(stream=stream, data=data)

    def __eq__(self, other: object) -> bool:
        if type(other) is not OutputChunk:
            return NotImplemented
        return (self.stream, self.data) == (other.stream, other.data)

    def __hash__(self) -> int:
        return hash((self.stream, self.data))

    def __repr__(self) -> str:
        return f"OutputChunk(stream={self.stream!r}, data={self.data!r})"


class Some(_Frozen, Generic[T]):
    """``some(value)`` of a component ``option`` whose payload is an option too, where
    ``None`` alone could not tell ``none`` from ``some(none)``.

    ``option<option<u8>>`` values are ``None`` (none), ``Some(None)`` (some(none))
    and ``Some(5)`` (some(some(5))); an option of anything else is ``None`` or the
    value itself, and takes a ``Some`` too.
    """

    __slots__ = ("value",)
    __match_args__ = ("value",)
    value: T

    def __init__(self, value: T) -> None:
        self._set(value=value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Some:
            return NotImplemented
        return (self.value,) == (other.value,)  # as a dataclass compares: nan is itself

    def __hash__(self) -> int:
        return hash((Some, self.value))

    def __repr__(self) -> str:
        return f"Some(value={self.value!r})"


CALLED = Called()
"""What a call that gave nothing gave."""
