"""How far the bfloat16 gradient is from the float64 one, next to float32's.

On the digits (relu, M 64, softmax, with offsets), for seeds 0–2, at initialisation and
after 10 epochs of Adam: the relative error ‖g − g₆₄‖₂ / max(‖g‖₂, ‖g₆₄‖₂) of
``batch_grad`` with ``Net(matmul_dtype="bfloat16")`` and with float32, against float64.

Usage: ``python benchmarks/bf16_error.py``
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxbp
from jaxbp import data
from jaxbp.oracle import relative_error


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def main() -> int:
    ds = data.load("digits")
    net32 = jaxbp.Net("relu", "softmax")
    net16 = jaxbp.Net("relu", "softmax", matmul_dtype="bfloat16")
    print(f"{'seed':>4}  {'θ':>9}  {'bf16 vs f64':>11}  {'f32 vs f64':>10}")
    for seed in (0, 1, 2):
        p = jaxbp.init(net32, jax.random.key(seed), d=64, hidden=64, out=10, bias=True)
        trained = jaxbp.fit(
            net32, p, ds.X_train, ds.y_train, optimizer=optax.adam(1e-3), epochs=10,
            batch_size=32, key=jax.random.key(1), progress=False,
        ).params  # fmt: skip
        for name, q in (("init", p), ("10 epochs", trained)):
            g16 = jaxbp.batch_grad(net16, q, ds.X_train, ds.y_train)
            g32 = jaxbp.batch_grad(net32, q, ds.X_train, ds.y_train)
            with jax.enable_x64(True):
                X64 = np.asarray(ds.X_train, np.float64)
                g64 = jaxbp.batch_grad(net32, _f64(q), X64, ds.y_train)
                e16 = float(relative_error(_f64(g16), g64))
                e32 = float(relative_error(_f64(g32), g64))
            print(f"{seed:>4}  {name:>9}  {e16:>11.2e}  {e32:>10.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
