import pytest

import tilegrad as tg
from tilegrad.backends import precision


@pytest.fixture(autouse=True)
def restore():
    before = tg.get_float32_matmul_precision()
    yield
    tg.set_float32_matmul_precision(before)


def test_default_is_highest():
    assert tg.get_float32_matmul_precision() == "highest"
    assert not precision.allow_tf32()


@pytest.mark.parametrize("choice,tf32", [("highest", False), ("high", True), ("medium", True)])
def test_set_and_get(choice, tf32):
    tg.set_float32_matmul_precision(choice)
    assert tg.get_float32_matmul_precision() == choice
    assert precision.allow_tf32() is tf32


@pytest.mark.parametrize("bad", ["low", "HIGH", None, 1])
def test_rejects_unknown(bad):
    tg.set_float32_matmul_precision("high")
    with pytest.raises(ValueError, match="expected one of"):
        tg.set_float32_matmul_precision(bad)
    assert tg.get_float32_matmul_precision() == "high"  # unchanged by the refused call
