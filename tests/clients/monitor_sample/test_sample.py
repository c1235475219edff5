"""A small test file that pytest-monitor measures in tests/clients/test_pytest_monitor.py
(each test does a little work, so its measured run time is never zero)."""

import pytest


def busy(n: int) -> int:
    return sum(i * i for i in range(n))


def test_sum() -> None:
    assert busy(20_000) > 0


def test_sort() -> None:
    data = [busy(50) % 97 for _ in range(2_000)]
    assert sorted(data)[0] <= data[-1]


@pytest.mark.parametrize(("a", "b"), [(1, 2), (3, 4)])
def test_add(a: int, b: int) -> None:
    busy(10_000)
    assert a + b == b + a
