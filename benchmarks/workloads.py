"""The benchmark workloads: one table, so that each name means one problem everywhere.

A workload is one epoch of minibatch training of f(x) = softmax(W relu(Vx)) on n
synthetic samples of d features, M hidden units, K classes, in minibatches of ``batch``.
``benchmarks/measure.py`` (and ``run.py``), ``bf16_epoch.py``, ``gpu.py`` and
``report.py`` all take their sizes from here, and the report names a result by its
sizes (:func:`name_of`), so an old result file is shown under today's names.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark problem: n samples of d features, M hidden units, K classes.

    ``reps`` is the number of epochs timed in each subprocess (after the warm-up).
    """

    name: str
    n: int
    d: int
    hidden: int
    classes: int
    batch: int
    reps: int

    @property
    def flops(self) -> int:
        """Executed flops of one epoch: n(4dM + 6MK)."""
        return self.n * (4 * self.d * self.hidden + 6 * self.hidden * self.classes)

    @property
    def steps(self) -> int:
        """Minibatch steps per epoch (every workload divides n by the batch size)."""
        return self.n // self.batch

    @property
    def sizes(self) -> tuple[int, int, int, int, int]:
        """(n, d, M, K, batch)."""
        return (self.n, self.d, self.hidden, self.classes, self.batch)

    def describe(self) -> str:
        return (f"n {self.n}, d {self.d}, M {self.hidden}, K {self.classes}, "
                f"batch {self.batch}")  # fmt: skip


WORKLOADS = {
    w.name: w
    for w in (
        # The CPU epoch benchmark (benchmarks/run.py): small, medium, large.
        Workload("S", n=8192, d=64, hidden=128, classes=10, batch=128, reps=20),
        Workload("M", n=65536, d=784, hidden=512, classes=10, batch=256, reps=2),
        Workload("L", n=16384, d=1024, hidden=4096, classes=10, batch=1024, reps=1),
        # Shorter versions of M and L for in-process A/B timings (benchmarks/bf16_epoch.py).
        Workload("Ms", n=16384, d=784, hidden=512, classes=10, batch=256, reps=5),
        Workload("Ls", n=8192, d=1024, hidden=2048, classes=10, batch=1024, reps=5),
        # GPU sizes (benchmarks/gpu.py): M above, and two that fill an accelerator.
        Workload("L′", n=262144, d=1024, hidden=4096, classes=10, batch=4096, reps=5),
        Workload("XL", n=1048576, d=784, hidden=8192, classes=10, batch=16384, reps=5),
    )
}
CPU_EPOCH = ("S", "M", "L")
BF16_EPOCH = ("Ms", "Ls")
GPU = ("M", "L′", "XL")


def name_of(n: int, d: int, hidden: int, classes: int, batch: int) -> str | None:
    """The name of the workload with these sizes, or None (e.g. a --quick size)."""
    for w in WORKLOADS.values():
        if w.sizes == (n, d, hidden, classes, batch):
            return w.name
    return None
