"""What a run returns: values with named fields, not tuples (their order is no API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar

if TYPE_CHECKING:
    from .._errors import ErrorResult

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """The outcome of a guest that ran to its end (a trap or a limit raises instead).

    ``exit_code`` is the guest's ``proc_exit`` status (0 when ``_start``
    returns); ``stdout``/``stderr`` hold what was captured (empty for streams
    that were not); ``values`` are the results of an ``invoke``-d function;
    ``fuel_consumed`` is set when the run was given fuel; ``elapsed`` is the
    wall time of instantiation and execution, in seconds, of which
    ``instantiate_time`` went to instantiation.
    """

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    values: tuple[Any, ...] = ()
    fuel_consumed: int | None = None
    # Timings are not part of the outcome: two runs that did the same are equal.
    elapsed: float = field(default=0.0, compare=False)
    instantiate_time: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Called(NamedTuple):
    """What a guest's call gave: its results, its exit status (a component's run), and
    the ``err`` an invoked component function returned. (A tuple: made on every run.)"""

    values: tuple[Any, ...] = ()
    exit_code: int = 0
    error_result: ErrorResult | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputChunk:
    """A piece of a streaming run's output, as the guest wrote it."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)  # (not slots: Python 3.10 fails on Some[int](5) with both)
class Some(Generic[T]):
    """``some(value)`` of a component ``option`` whose payload is an option too, where
    ``None`` alone could not tell ``none`` from ``some(none)``.

    ``option<option<u8>>`` values are ``None`` (none), ``Some(None)`` (some(none))
    and ``Some(5)`` (some(some(5))); an option of anything else is ``None`` or the
    value itself, and takes a ``Some`` too.
    """

    value: T


CALLED = Called()
"""What a call that gave nothing gave."""
