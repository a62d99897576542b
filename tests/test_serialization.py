"""tilegrad.serialization: round trips, integrity checks on damaged files, atomic writes."""
import collections
import io
import math
import os

import numpy as np
import pytest

import tilegrad as tg
from tilegrad import optim
from tilegrad.serialization import load, save

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]


def _random_array(rng, dtype, shape):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def _nested(rng):
    weights = collections.OrderedDict(
        (f"layer{i}.{np.dtype(d).name}", tg.tensor(_random_array(rng, d, (3, i + 1)))) for i, d in enumerate(DTYPES))
    weights["scalar"] = tg.tensor(_random_array(rng, np.float64, ()))
    weights["empty"] = tg.tensor(_random_array(rng, np.int64, (0, 4)))
    weights["strided"] = tg.tensor(_random_array(rng, np.float32, (4, 6)))[:, ::2].T
    return {
        "model": weights,
        "optimizer": {"state": {0: {"step": 7, "exp_avg": tg.tensor(_random_array(rng, np.float32, (5,)))}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "name": None}]},
        "epoch": 3, "best": float("inf"), "worst": -math.inf, "ratio": 0.1, "flag": True, "tag": "ünïcode",
        "history": [1.5, 2, [3, {"k": (4, "x")}]], (1, "tuple"): "key", 2.5: "float key",
        "array": _random_array(rng, np.int16, (2, 3)), "np_scalar": np.float32(1.25), "dtype": tg.float16,
        "leaf": tg.randn(2, requires_grad=True),
    }


def _assert_same(a, b, path="obj"):
    assert type(a) is type(b), path
    if isinstance(a, tg.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad, path
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(), err_msg=path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a == b, path
    else:
        assert a == b, path


@pytest.fixture
def checkpoint(tmp_path, seed):
    obj = _nested(np.random.default_rng(seed))
    path = tmp_path / "ckpt.safetensors"
    save(obj, path)
    return obj, path


def test_round_trip_nested_state_dict(checkpoint):
    obj, path = checkpoint
    back = load(path)
    _assert_same(obj, back)
    assert back["model"]["layer0.float32"]._data.flags.writeable  # loaded tensors own writable memory
    assert os.listdir(path.parent) == ["ckpt.safetensors"]


def test_round_trip_file_objects_and_a_bare_tensor(seed):
    t = tg.tensor(_random_array(np.random.default_rng(seed), np.float32, (3, 2)))
    buf = io.BytesIO()
    save(t, buf)
    buf.seek(0)
    _assert_same(t, load(buf, map_location="cpu"))


def test_tensor_names_are_their_paths_for_other_readers(checkpoint):
    from safetensors.numpy import load_file
    obj, path = checkpoint
    arrays = load_file(str(path))
    assert "model.layer0.float32" in arrays and "optimizer.state.0.exp_avg" in arrays
    np.testing.assert_array_equal(arrays["model.layer3.int64"], obj["model"]["layer3.int64"].numpy())


def test_foreign_safetensors_file_loads_as_a_flat_dict(tmp_path):
    from safetensors.numpy import save_file
    save_file({"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.ones(2, np.float16)}, str(tmp_path / "f"))
    back = load(tmp_path / "f")
    assert sorted(back) == ["a", "b"] and back["a"].dtype == tg.int64 and back["a"].shape == (2, 3)


def test_optimizer_and_scheduler_resume_from_a_checkpoint(tmp_path, seed):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    grads = [[rng.standard_normal(p.shape) for p in init] for _ in range(6)]

    def make(values):
        ps = [tg.tensor(v, requires_grad=True) for v in values]
        opt = optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}], lr=0.01, amsgrad=True)
        return ps, opt, optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    ps, opt, sched = make(init)
    for step, g in enumerate(grads):
        if step == 3:
            save({"params": ps, "opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "c")
        for p, gi in zip(ps, g):
            p.grad = tg.tensor(gi)
        opt.step()
        sched.step()
    ck = load(tmp_path / "c")
    ps2, opt2, sched2 = make([p.detach().numpy() for p in ck["params"]])
    opt2.load_state_dict(ck["opt"])
    sched2.load_state_dict(ck["sched"])
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    for g in grads[3:]:
        for p, gi in zip(ps2, g):
            p.grad = tg.tensor(gi)
        opt2.step()
        sched2.step()
    for a, b in zip(ps, ps2):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert sched.get_last_lr() == sched2.get_last_lr()


def _expect_corrupt(path):
    with pytest.raises(ValueError, match=str(path.name)):
        load(path)


def test_truncated_files_are_refused(checkpoint):
    obj, path = checkpoint
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    for cut in sorted({0, 3, 8, 20, header_end - 1, header_end, header_end + 1, len(data) // 2, len(data) - 1}):
        path.write_bytes(data[:cut])
        _expect_corrupt(path)


def test_flipped_bytes_in_the_header_are_detected(checkpoint, seed):
    obj, path = checkpoint
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    rng = np.random.default_rng(seed)
    # Every byte of the header once (including the length field), with a random bit each time.
    for pos in range(header_end):
        damaged = bytearray(data)
        damaged[pos] ^= 1 << int(rng.integers(8))
        f = io.BytesIO(bytes(damaged))
        f.name = str(path)
        try:
            load(f)
        except ValueError as e:
            assert path.name in str(e)
        else:
            raise AssertionError(f"a flipped bit at byte {pos} of the header went unnoticed")


def test_flipped_bytes_in_tensor_data_are_detected(checkpoint, seed):
    obj, path = checkpoint
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    rng = np.random.default_rng(seed)
    for pos in rng.integers(header_end, len(data), size=40):
        damaged = bytearray(data)
        damaged[pos] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match="fails its CRC-32 check"):
            load(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"not a checkpoint at all, just some text\n" * 20,
                                     b"\x80\x04\x95" + bytes(range(256)), (16).to_bytes(8, "little") + b"[1,2,3]" + b" " * 9,
                                     (10**12).to_bytes(8, "little") + b"{}"])
def test_files_that_are_not_safetensors_are_refused(tmp_path, content):
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    _expect_corrupt(path)


def test_unsupported_objects_name_their_place(tmp_path):
    with pytest.raises(TypeError, match=r"object of type set at model\.extra"):
        save({"model": {"extra": {1, 2}}}, tmp_path / "x")
    with pytest.raises(TypeError, match="dict key"):
        save({object(): 1}, tmp_path / "x")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_atomic_write_keeps_the_old_file_on_failure(checkpoint, monkeypatch, failing):
    obj, path = checkpoint
    before = path.read_bytes()
    real_write = os.write

    def half_then_fail(fd, data):  # a disk that fills up halfway through
        real_write(fd, bytes(data[:len(data) // 2]))
        raise OSError(28, "No space left on device")

    def fail(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, half_then_fail if failing == "write" else fail)
    with pytest.raises(OSError):
        save({"other": tg.ones(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    _assert_same(obj, load(path))


def test_map_location_cuda_without_a_gpu(checkpoint):
    if tg.cuda.is_available():
        pytest.skip("a GPU is available")
    obj, path = checkpoint
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load(path, map_location="cuda")


@pytest.mark.cuda
def test_cuda_tensors_round_trip(tmp_path):
    t = tg.randn(5, 3).cuda()
    save({"w": t, "n": 1}, tmp_path / "g")
    back = load(tmp_path / "g")
    assert back["w"].device == t.device
    np.testing.assert_array_equal(back["w"].cpu().numpy(), t.cpu().numpy())
    assert load(tmp_path / "g", map_location="cpu")["w"].device == "cpu"
