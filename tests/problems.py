"""The one small random-problem builder of the tests: a net, θ and a batch (X, Y).

A thin layer over :func:`jaxbp.oracle.random_problem` (which ``jaxbp gradcheck`` and
``jaxbp explain`` use too): X standard normal, offsets drawn non-zero, and the head's
own random targets, optionally encoded as the float rows ℓ and δ take.
"""

from __future__ import annotations

import jax
import numpy as np

import jaxbp
from jaxbp.oracle import random_problem
from jaxbp.validate import check_targets

D, M, N = 3, 4, 5


def problem(
    activation="tanh", head="softmax", *, K: int, bias=False, dtype=np.float32, seed=0,
    rows=True,
):  # fmt: skip
    """(net, params, X, Y); Y as float rows (n, K) when ``rows``, else as the head's labels."""
    net = jaxbp.Net(activation=activation, head=head)
    params, X, Y = random_problem(
        net, jax.random.key(seed), n=N, d=D, hidden=M, K=K, bias=bias, dtype=dtype
    )
    if rows:
        Y = check_targets(net, params, Y, x_ndim=2)
    return net, params, X, Y
