"""The host caching allocator (tilegrad.memory): NumPy's allocator after ``import tilegrad``,
reusing freed large blocks without changing what any array holds."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import tilegrad as tg
from tilegrad import memory

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")
handler_name = np._core.multiarray.get_handler_name

MB = 1 << 20


@pytest.fixture(autouse=True)
def cache_installed():
    assert memory.install()
    yield
    memory.install()


def test_numpy_uses_the_cache_after_import():
    a = np.empty(3 * MB, np.uint8)
    assert handler_name(a) == "tilegrad_host_cache"


def test_freed_block_is_reused_for_the_same_size_class(rng):
    memory.empty_host_cache()
    a = np.empty(5 * MB + 123, np.uint8)
    address = a.ctypes.data
    del a
    before = memory.host_cache_stats()
    assert before["cached_bytes"] >= 5 * MB
    b = np.empty(5 * MB + 1000, np.uint8)  # same 64 KiB class
    after = memory.host_cache_stats()
    assert b.ctypes.data == address
    assert after["hits"] == before["hits"] + 1
    # a reused block is an ordinary array: write and read back random data
    data = rng.gen.integers(0, 256, b.size).astype(np.uint8)
    b[...] = data
    np.testing.assert_array_equal(b, data)


def test_zeros_from_a_dirty_reused_block_are_zero(rng):
    memory.empty_host_cache()
    a = np.empty(4 * MB, np.float32)
    a[...] = rng.gen.standard_normal(a.size)
    address = a.ctypes.data
    del a
    z = np.zeros(4 * MB, np.float32)  # calloc through the cache
    assert z.ctypes.data == address
    assert not z.any()


def test_resize_keeps_contents_small_and_large(rng):
    for n0, n1 in [(1000, 3 * MB), (3 * MB, 7 * MB), (7 * MB, 100), (2 * MB, 2 * MB + 10)]:
        a = np.zeros(n0, np.uint8)
        data = rng.gen.integers(1, 256, n0).astype(np.uint8)
        a[...] = data
        a.resize(n1, refcheck=False)  # realloc
        keep = min(n0, n1)
        np.testing.assert_array_equal(a[:keep], data[:keep])
        if n1 > n0:
            assert not a[n0:].any()  # NumPy zero-fills the new part


def test_limit_zero_keeps_nothing_and_stats_count_live_blocks():
    memory.empty_host_cache()
    _cpu.host_cache_set_limit(0)
    try:
        a = np.empty(2 * MB, np.uint8)
        assert memory.host_cache_stats()["live_bytes"] >= 2 * MB
        del a
        assert memory.host_cache_stats()["cached_bytes"] == 0
    finally:
        memory.install()  # restores the configured limit


def test_uninstall_restores_numpy_default():
    memory.uninstall()
    a = np.empty(3 * MB, np.uint8)
    assert handler_name(a) != "tilegrad_host_cache"
    memory.install()
    b = np.empty(3 * MB, np.uint8)
    assert handler_name(b) == "tilegrad_host_cache"
    del a, b  # each freed by the allocator that made it


def test_threads_allocating_and_freeing_concurrently(rng):
    errors = []
    sizes = [int(s) for s in rng.gen.integers(MB, 6 * MB, 24)]

    def work(seed):
        try:
            memory.install()  # a new thread starts with NumPy's default allocator
            local = np.random.default_rng(seed)
            for size in sizes:
                a = np.empty(size, np.uint8)
                fill = int(local.integers(0, 256))
                a[...] = fill
                assert (a == fill).all()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_tensors_and_kernels_work_on_cached_memory(rng):
    x = tg.tensor(rng.gen.standard_normal((700, 600)).astype(np.float32), requires_grad=True)
    for _ in range(3):  # same shapes every step: later steps reuse blocks
        y = (x @ x.T).relu().sum()
        y.backward()
    want = np.maximum(x.detach().numpy() @ x.detach().numpy().T, 0).sum()
    np.testing.assert_allclose(y.item(), want, rtol=1e-4)
    assert memory.host_cache_stats()["hits"] > 0


def test_env_zero_disables_and_bad_values_are_named():
    code = "import numpy as np, tilegrad; print(np._core.multiarray.get_handler_name(np.empty(1 << 22)))"
    env = dict(os.environ, TILEGRAD_HOST_CACHE_MB="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() != "tilegrad_host_cache"
    env["TILEGRAD_HOST_CACHE_MB"] = "lots"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "TILEGRAD_HOST_CACHE_MB" in bad.stderr


def test_set_limit_rejects_bad_values():
    with pytest.raises(TypeError, match="host_cache_set_limit"):
        _cpu.host_cache_set_limit(1.5)
    with pytest.raises(ValueError, match="host_cache_set_limit"):
        _cpu.host_cache_set_limit(-1)
