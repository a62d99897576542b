import os

import numpy as np
import pytest

import tilegrad


def pytest_collection_modifyitems(config, items):
    if tilegrad.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU and CuPy")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed(request):
    """A fresh seed per test run (or TILEGRAD_TEST_SEED), printed when the test fails."""
    value = int(os.environ.get("TILEGRAD_TEST_SEED", np.random.SeedSequence().entropy % 2**32))
    request.node.user_properties.append(("seed", value))
    yield value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for key, value in item.user_properties:
            if key == "seed":
                report.sections.append(("seed", f"reproduce with TILEGRAD_TEST_SEED={value}"))
