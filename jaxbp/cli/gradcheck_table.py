"""``jaxbp gradcheck``: the hand-written gradients against jax.grad and finite differences.

For every activation × head × bias it draws a small random network and batch and
prints the largest relative errors (‖g₁ − g₂‖₂ / max(‖g₁‖₂, ‖g₂‖₂) over the
flattened gradient, float64) of manual vs autodiff, manual vs finite differences
and autodiff vs finite differences. Exits 1 if any exceeds its tolerance.
"""

from __future__ import annotations

import itertools
import time

import jax

from jaxbp.model import Net
from jaxbp.oracle import gradcheck, random_problem


def run_table(args) -> int:
    """Print the table for the CLI arguments; return 0 if every error is within tolerance."""
    rows, worst = [], {"manual_vs_autodiff": 0.0, "manual_vs_fd": 0.0, "autodiff_vs_fd": 0.0}
    start = time.perf_counter()
    header = f"{'activation':<11} {'head':<9} {'bias':<5} {'manual~jax.grad':>15} "
    header += f"{'manual~FD':>11} {'jax.grad~FD':>11}  ok"
    print("Max relative errors in float64 (‖g₁ − g₂‖₂ / max(‖g₁‖₂, ‖g₂‖₂), whole gradient)")
    print(f"tolerances: manual~jax.grad ≤ {args.tol_autodiff:.0e}, ~FD ≤ {args.tol_fd:.0e}\n")
    print(header)
    print("-" * len(header))
    failed = 0
    for i, (act, head, bias) in enumerate(
        itertools.product(args.activations, args.heads, (False, True))
    ):
        net = Net(activation=act, head=head)
        with jax.enable_x64(True):
            K = net.loss_head.nearest_width(args.out)
            params, X, Y = random_problem(
                net, jax.random.fold_in(jax.random.key(args.seed), i),
                n=args.n, d=args.d, hidden=args.hidden, K=K, bias=bias,
            )  # fmt: skip
            r = gradcheck(net, params, X, Y)
        ok = (
            r.manual_vs_autodiff <= args.tol_autodiff
            and max(r.manual_vs_fd, r.autodiff_vs_fd) <= args.tol_fd
        )
        failed += not ok
        for k in worst:
            worst[k] = max(worst[k], getattr(r, k))
        rows.append(r)
        print(
            f"{act:<11} {head:<9} {'yes' if bias else 'no':<5} {r.manual_vs_autodiff:>15.1e} "
            f"{r.manual_vs_fd:>11.1e} {r.autodiff_vs_fd:>11.1e}  {'ok' if ok else 'FAIL'}"
        )
    print("-" * len(header))
    print(
        f"{'largest':<27} {worst['manual_vs_autodiff']:>15.1e} {worst['manual_vs_fd']:>11.1e} "
        f"{worst['autodiff_vs_fd']:>11.1e}"
    )
    seconds = time.perf_counter() - start
    print(f"\n{len(rows) - failed}/{len(rows)} within tolerance ({seconds:.1f} s)")
    return 1 if failed else 0
