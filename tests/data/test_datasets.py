"""tilegrad.datasets: the shipped digits and text, the IDX reader on small files written here."""
import gzip
import struct

import numpy as np
import pytest

import tilegrad as tg
from tilegrad.datasets import MNIST, CharDataset, Digits, FashionMNIST, digits_split, load_digits, load_text, read_idx
from tilegrad.utils.data import DataLoader


def test_load_digits_shapes_scaling_and_classes():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == tg.float32
    assert labels.shape == (1797,) and labels.dtype == tg.int64
    x, y = images.numpy(), labels.numpy()
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(np.unique(x * 16), np.arange(17))  # pixel / 16 with pixels 0..16
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # the first image of the UCI test set is a zero
    assert y[0] == 0 and (x[0] * 16)[0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_split_is_deterministic_stratified_and_disjoint():
    train, test = digits_split()
    assert len(train) + len(test) == 1797 and not set(train) & set(test)
    again = digits_split()
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, digits_split(seed=1)[1])
    _, labels = load_digits(as_numpy=True)
    shares = np.bincount(labels[test], minlength=10) / np.bincount(labels)
    assert np.all(np.abs(shares - 0.2) < 0.01)


def test_digits_dataset_and_loader():
    train, test = Digits(train=True), Digits(train=False)
    assert len(train) + len(test) == 1797 and len(Digits(train=None)) == 1797
    image, label = train[0]
    assert image.shape == (1, 8, 8) and label.dtype == tg.int64 and label.shape == ()
    xb, yb = next(iter(DataLoader(train, batch_size=32, shuffle=True)))
    assert xb.shape == (32, 1, 8, 8) and yb.shape == (32,)
    flat = Digits(flatten=True, transform=lambda t: t * 2)
    xb, _ = next(iter(DataLoader(flat, batch_size=4)))
    assert xb.shape == (4, 64)
    np.testing.assert_allclose(xb.numpy(), Digits(flatten=True).data.numpy()[:4] * 2)


def _write_idx(path, array, magic_type=0x08, compress=False):
    header = struct.pack(">BBBB", 0, 0, magic_type, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(">u1" if magic_type == 0x08 else array.dtype).tobytes()
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files(tmp_path, seed, compress):
    rng = np.random.default_rng(seed)
    ext = ".gz" if compress else ""
    split = {}
    for prefix, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{ext}", images, compress=compress)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{ext}", labels, compress=compress)
        split[prefix] = images, labels
    raw = open(tmp_path / f"train-images-idx3-ubyte{ext}", "rb").read()
    if not compress:
        assert raw[:4] == bytes.fromhex("00000803")
    for train, prefix in ((True, "train"), (False, "t10k")):
        ds = MNIST(tmp_path, train=train)
        images, labels = split[prefix]
        assert len(ds) == len(labels) and ds.data.shape == (len(labels), 1, 28, 28)
        np.testing.assert_allclose(ds.data.numpy()[:, 0], images / 255.0, rtol=1e-6)
        assert ds.targets.numpy().tolist() == labels.tolist() and ds.targets.dtype == tg.int64
        x, y = ds[3]
        assert x.shape == (1, 28, 28) and int(y) == labels[3]
    # torchvision's layout works too
    fashion_raw = tmp_path / "FashionMNIST" / "raw"
    fashion_raw.mkdir(parents=True)
    for f in tmp_path.glob("t10k-*"):
        (fashion_raw / f.name).write_bytes(f.read_bytes())
    assert len(FashionMNIST(tmp_path / ".", train=False)) == 5


def test_mnist_missing_files_name_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[\.gz\] and t10k-labels-idx1-ubyte"):
        MNIST(tmp_path, train=False)


def test_read_idx_refuses_bad_files(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x00\x00\x07\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(p)
    _write_idx(p, np.arange(10, dtype=np.uint8))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(ValueError, match="needs 10"):
        read_idx(p)
    _write_idx(p, np.arange(6, dtype=">i4").reshape(2, 3), magic_type=0x0C)
    assert read_idx(p).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_text_and_char_dataset():
    text = load_text()
    assert 20_000 < len(text) < 60_000 and text.isascii()
    assert text.startswith("THE DECLARATION OF INDEPENDENCE") and "We the People of the United States" in text
    ds = CharDataset(text, seq_len=32)
    assert len(ds) == len(text) - 32 and ds.vocab_size == len(set(text))
    x, y = ds[100]
    assert x.dtype == tg.int64 and x.shape == (32,)
    assert ds.decode(x) == text[100:132] and ds.decode(y) == text[101:133]
    assert ds.decode(ds.encode("Liberty")) == "Liberty" and ds.itos[ds.stoi["L"]] == "L"
    tg.manual_seed(0)
    xb, yb = next(iter(DataLoader(ds, batch_size=8, shuffle=True)))
    tg.manual_seed(0)
    from tilegrad.utils.data import default_collate
    xs, ys = next(iter(DataLoader(ds, batch_size=8, shuffle=True, collate_fn=lambda b: default_collate(b))))
    assert xb.shape == (8, 32) and np.array_equal(xb.numpy(), xs.numpy()) and np.array_equal(yb.numpy(), ys.numpy())
    with pytest.raises(ValueError, match="seq_len"):
        CharDataset("abc", seq_len=5)
    with pytest.raises(IndexError):
        ds[len(ds)]
