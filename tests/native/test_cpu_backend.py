"""The cpu backend's native kernels through the op table, with the small-size cutoffs lowered to
zero: the op samples are small (a few hundred elements), so tests/ops/test_parity.py would
otherwise exercise only the reference fallback of every kernel with a cutoff. Every sample of
every op whose kernels the cpu backend overrides runs forward and backward in float32
(contiguous and strided inputs) against the float64 reference; plus larger ragged samples of
the softmax, activation and layer-norm ops."""
import numpy as np
import pytest

from tilegrad import ops, testing
from tilegrad.backends import cpu
from tilegrad.ops.base import Sample

pytestmark = pytest.mark.skipif(cpu._cpu is None, reason="tilegrad._cpu was not built")

# The ops whose forward or backward call a kernel that the cpu backend overrides.
NATIVE_OPS = ["Relu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "LeakyRelu", "Gelu", "Silu", "LayerNorm",
              "Conv2d", "ConvTranspose2d"]
CASES = [(name, i) for name in NATIVE_OPS if name in ops.OPS
         for i in range(len(ops.OPS[name].samples(np.random.default_rng(0))))]


@pytest.fixture
def no_cutoffs(monkeypatch):
    monkeypatch.setattr(cpu, "SMALL", 0)
    monkeypatch.setattr(cpu, "SMALL_HEAVY", 0)


def _compare(sample, seed, noncontiguous, what):
    expected_out, expected_grads = testing.run_sample(sample, "float64", "cpu", "reference", False, seed)
    out, grads = testing.run_sample(sample, "float32", "cpu", "native", noncontiguous, seed)
    assert len(out) == len(expected_out)
    for k, (a, e) in enumerate(zip(out, expected_out)):
        testing.assert_close(a, e, "float32", f"{what} output {k}")
    for k, (g, e) in enumerate(zip(grads, expected_grads)):
        assert (g is None) == (e is None), f"{what}: grad {k} presence differs"
        if e is not None:
            testing.assert_close(g, e, "float32", f"{what} grad of input {k}")


def test_every_overridden_kernel_is_covered():
    names = set(cpu.KERNELS) - {"matmul"}
    overridden = {n for n in names if cpu.KERNELS[n] is not cpu.reference.KERNELS[n]}
    assert overridden >= {"softmax", "log_softmax", "sigmoid", "tanh", "gelu", "silu", "leaky_relu",
                          "layer_norm", "conv2d", "conv2d_backward_input", "conv2d_backward_weight"}, overridden


@pytest.mark.usefixtures("no_cutoffs")
@pytest.mark.parametrize("noncontiguous", [False, True], ids=["contig", "strided"])
@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_op_samples_on_native_kernels(name, i, noncontiguous, seed):
    sample = ops.OPS[name].samples(np.random.default_rng(seed))[i]
    _compare(sample, seed, noncontiguous, f"{name}[{sample.desc}] native float32 seed={seed}")


def _larger_samples(rng):
    """Sizes past every vector width and the parallel thresholds, ragged everywhere."""
    S, L = ops.OPS["Softmax"], ops.OPS["LogSoftmax"]
    out = []
    for shape, dim in [((3, 257, 5), 1), ((301, 259), 0), ((301, 259), -1), ((2, 33, 1031), 2)]:
        for cls in (S, L):
            out.append(Sample((rng.standard_normal(shape) * 3,), lambda x, d=dim, c=cls: c.apply(x, d),
                              f"{cls.__name__} {shape} dim={dim}"))
    x = rng.standard_normal(70_001) * 4
    for name in ("Sigmoid", "Tanh", "Silu"):
        out.append(Sample((x,), lambda x, c=ops.OPS[name]: c.apply(x), name))
    for a in ("none", "tanh"):
        out.append(Sample((x,), lambda x, a=a: ops.OPS["Gelu"].apply(x, a), f"Gelu {a}"))
    out.append(Sample((x,), lambda x: ops.OPS["LeakyRelu"].apply(x, 0.05), "LeakyRelu"))
    LN = ops.OPS["LayerNorm"]
    for shape, n in [((129, 517), 1), ((7, 9, 65), 2), ((1, 1001), 1)]:
        norm = shape[len(shape) - n:]
        out.append(Sample((rng.standard_normal(shape) + 2, rng.standard_normal(norm), rng.standard_normal(norm)),
                          lambda x, w, b, n=n: LN.apply(x, w, b, n, 1e-5), f"LayerNorm {shape} n={n}"))
        out.append(Sample((rng.standard_normal(shape),), lambda x, n=n: LN.apply(x, None, None, n, 1e-5),
                          f"LayerNorm {shape} n={n} no affine"))
    return out


LARGER = list(range(len(_larger_samples(np.random.default_rng(0)))))


@pytest.mark.parametrize("noncontiguous", [False, True], ids=["contig", "strided"])
@pytest.mark.parametrize("i", LARGER)
def test_larger_ragged_samples(i, noncontiguous, seed):
    sample = _larger_samples(np.random.default_rng(seed))[i]
    _compare(sample, seed, noncontiguous, f"{sample.desc} native float32 seed={seed}")
