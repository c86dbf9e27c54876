"""Batch streams of the scoring helpers (docs/methods.md A.0)."""


from prunebench.library.pruners import prune
from prunebench.library.pruners.scoring import BatchStream
from toys import data, small


def test_batch_stream_semantics():
    b = data(3)
    s = BatchStream(b)
    assert [s.next()[0].data_ptr() for _ in range(4)] == [x.data_ptr() for x, _ in b + b[:1]]  # cycled
    single = BatchStream(b[0])
    assert single.next()[0] is b[0][0] and single.next()[0] is b[0][0]

    class Loader:  # re-iterable (like a DataLoader): restarted when exhausted
        def __iter__(self):
            return iter(b[:2])

    s = BatchStream(Loader())
    assert [s.next()[0].data_ptr() for _ in range(3)] == [b[0][0].data_ptr(), b[1][0].data_ptr(), b[0][0].data_ptr()]

    drawn = []

    def fresh():  # an infinite iterator: FORCE draws num_batches fresh batches per step
        i = 0
        while True:
            drawn.append(i)
            yield data(1, seed=100 + i)[0]
            i += 1

    prune(small(), "force", 0.5, fresh(), steps=3, num_batches=2)
    assert len(drawn) == 6
