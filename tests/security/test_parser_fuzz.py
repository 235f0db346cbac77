"""Parser fuzzing: every parser in the registry of tests/fuzz_support.py (Signature-Input,
Signature, the mandate token, JWS receipts, money, the cart canonicalizer, webhook headers,
QR payment requests, and whatever later parts register) gets bounded random and mutated
inputs; nothing escapes but its defined errors, and no single call runs past a generous
bound (a hang, not a speed, is what fails). ``--long`` tries ten times as many cases."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from figures_support import report
from fuzz_support import PARSERS

HANG_S = 20  # one parse of at most a few kilobytes; far beyond any honest parse
EXAMPLES = 200
TRIED: dict[str, int] = {}


@contextmanager
def _hang_guard(name: str) -> Iterator[None]:
    def hung(_signum: int, _frame: Any) -> None:
        raise AssertionError(f"{name}: one parse ran for {HANG_S} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_nothing_escapes_but_the_defined_errors(name: str, request: pytest.FixtureRequest) -> None:
    case = PARSERS[name]
    examples = EXAMPLES * (10 if request.config.getoption("--long") else 1)
    TRIED[name] = 0

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        value = data.draw(case.inputs)
        TRIED[name] += 1
        with _hang_guard(name), suppress(case.errors):
            case.parse(value)

    run()
    report(f"parser fuzz: {name}: {TRIED[name]} inputs, only defined errors")


def test_pathological_inputs_end() -> None:
    """Inputs shaped to make a careless parser quadratic or recursive."""
    shapes = ["(" * 50_000, '"' + "\\" * 50_000, "a=(" + "b " * 30_000 + ")", ";" * 50_000]
    shapes += ["a=" + "1" * 50_000, "," * 50_000, "a=:" + "A" * 100_000 + ":"]
    for name in ("Signature-Input", "Signature"):
        case = PARSERS[name]
        for shape in shapes:
            with _hang_guard(name), suppress(case.errors):
                case.parse(shape)
