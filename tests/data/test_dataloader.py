"""DataLoader, samplers, default_collate, TensorDataset, Subset, ConcatDataset and random_split."""
from collections import namedtuple

import numpy as np
import pytest

import tilegrad as tg
from tilegrad.utils.data import (ConcatDataset, DataLoader, Dataset, IterableDataset, Subset, TensorDataset,
                                 default_collate, random_split)


def _data(n=23, seed=0):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal((n, 3, 2)).astype(np.float32)), tg.arange(n)


class Squares(Dataset):
    def __len__(self):
        return 11

    def __getitem__(self, i):
        return {"x": np.full(2, i, np.float32), "y": i * i, "name": f"s{i}"}


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (4, False), (4, True), (23, False), (50, False),
                                                  (50, True)])
def test_batches_cover_the_data_in_order(batch_size, drop_last):
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader) == (23 // batch_size if drop_last else -(-23 // batch_size))
    seen = [i for _, yb in batches for i in yb.tolist()]
    assert seen == list(range(len(seen)))
    assert len(seen) == (23 // batch_size * batch_size if drop_last else 23)
    for xb, yb in batches:
        assert xb.shape == (len(yb), 3, 2) and yb.dtype == tg.int64
        np.testing.assert_array_equal(xb.numpy(), x.numpy()[yb.numpy()])


def test_shuffle_is_seeded_by_manual_seed_and_generator():
    x, y = _data()

    def epochs(loader, n=3):
        return [[i for _, yb in loader for i in yb.tolist()] for _ in range(n)]

    tg.manual_seed(5)
    first = epochs(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True))
    tg.manual_seed(5)
    again = epochs(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True))
    assert first == again
    assert all(sorted(e) == list(range(23)) for e in first)
    assert first[0] != first[1]  # a new order each epoch
    gen = tg.Generator().manual_seed(1)
    own = epochs(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, generator=gen))
    gen.manual_seed(1)
    assert own == epochs(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, generator=gen))


def test_fast_path_equals_per_sample_collate():
    x, y = _data()
    tg.manual_seed(3)
    fast = list(DataLoader(TensorDataset(x, y), batch_size=6, shuffle=True))
    tg.manual_seed(3)
    slow = list(DataLoader(TensorDataset(x, y), batch_size=6, shuffle=True, collate_fn=lambda b: default_collate(b)))
    for (a, b), (c, d) in zip(fast, slow):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
    sub = Subset(TensorDataset(x, y), [5, 1, 7])
    assert list(DataLoader(sub, batch_size=3))[0][1].tolist() == [5, 1, 7]


def test_default_collate_types():
    batch = default_collate([Squares()[i] for i in range(3)])
    assert set(batch) == {"x", "y", "name"}
    assert batch["x"].shape == (3, 2) and batch["x"].dtype == tg.float32
    assert batch["y"].tolist() == [0, 1, 4] and batch["y"].dtype == tg.int64
    assert batch["name"] == ["s0", "s1", "s2"]
    assert default_collate([1.5, 2.0]).dtype == tg.float64
    assert default_collate([True, False]).dtype == tg.bool
    assert default_collate([np.float32(1), np.float32(2)]).dtype == tg.float32
    assert default_collate([np.zeros(2, np.int32)] * 4).shape == (4, 2)
    pair = default_collate([(tg.ones(2), 1), (tg.zeros(2), 2)])
    assert isinstance(pair, list) and pair[0].shape == (2, 2) and pair[1].tolist() == [1, 2]
    Point = namedtuple("Point", "a b")
    point = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(point, Point) and point.a.tolist() == [1, 3]
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([tg.ones(2), tg.ones(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])


def test_default_collate_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    samples = [(np.arange(3, dtype=np.float64) * i, i, 0.5 * i, {"k": np.int32(i)}) for i in range(4)]
    mine, theirs = default_collate(samples), torch_collate(samples)
    assert type(mine) is type(theirs) and len(mine) == len(theirs)
    for a, b in [(mine[0], theirs[0]), (mine[1], theirs[1]), (mine[2], theirs[2]), (mine[3]["k"], theirs[3]["k"])]:
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert torch is not None


def test_batch_size_none_and_custom_collate():
    loader = DataLoader(Squares(), batch_size=None)
    first = next(iter(loader))
    assert isinstance(first["x"], tg.Tensor) and first["y"] == 0 and len(loader) == 11
    names = list(DataLoader(Squares(), batch_size=4, collate_fn=lambda b: [s["name"] for s in b]))
    assert names[-1] == ["s8", "s9", "s10"]


def test_iterable_dataset():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(10))

    assert [b.tolist() for b in DataLoader(Stream(), batch_size=4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(list(DataLoader(Stream(), batch_size=4, drop_last=True))) == 2
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(Stream(), shuffle=True)


def test_argument_errors():
    x, y = _data()
    ds = TensorDataset(x, y)
    with pytest.raises(ValueError, match="num_workers=2 is not supported"):
        DataLoader(ds, num_workers=2)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(x, tg.arange(3))


def test_random_split_lengths_and_fractions():
    ds = TensorDataset(*_data(n=10))
    tg.manual_seed(0)
    a, b = random_split(ds, [7, 3])
    tg.manual_seed(0)
    a2, b2 = random_split(ds, [0.7, 0.3])
    assert (len(a), len(b)) == (7, 3) and a.indices == a2.indices and b.indices == b2.indices
    assert sorted(a.indices + b.indices) == list(range(10))
    parts = random_split(ds, [0.34, 0.33, 0.33], generator=tg.Generator().manual_seed(2))
    assert [len(p) for p in parts] == [4, 3, 3]  # the leftover item goes to the first split
    assert parts[0].indices == random_split(ds, [0.34, 0.33, 0.33], generator=tg.Generator().manual_seed(2))[0].indices
    with pytest.raises(ValueError, match="does not equal the length"):
        random_split(ds, [5, 6])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(ds, [1.5, -0.5])


def test_subset_and_concat():
    x, y = _data(n=5)
    ds = TensorDataset(x, y)
    both = ds + Subset(ds, [4, 0])
    assert isinstance(both, ConcatDataset) and len(both) == 7
    assert [int(both[i][1]) for i in range(7)] == [0, 1, 2, 3, 4, 4, 0]
    assert int(both[-1][1]) == 0
    assert [int(s) for s in next(iter(DataLoader(both, batch_size=7)))[1]] == [0, 1, 2, 3, 4, 4, 0]
