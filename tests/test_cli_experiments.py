"""The lecture's claims as experiments (``jaxbp.cli.experiments``), on their --quick settings.

Each experiment runs once per module (fixtures) into a temporary folder; each test
asserts the claim the experiment is about, and that results.json and the figures exist.
"""

from __future__ import annotations

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxbp
from jaxbp import data
from jaxbp.cli import experiments
from jaxbp.cli.experiments import universal


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("experiments")


def _run(out, name):
    results = experiments.run_experiment(name, out, quick=True, seed=0)
    saved = json.loads((out / name / "results.json").read_text())
    assert saved["settings"] == json.loads(json.dumps(results["settings"]))
    assert {"versions", "timings", "figures"} <= saved.keys()
    for png in saved["figures"]:
        assert (out / name / png).read_bytes()[:4] == b"\x89PNG"
    return saved


@pytest.fixture(scope="module")
def universal_results(out):
    return _run(out, "universal")


@pytest.fixture(scope="module")
def features_results(out):
    return _run(out, "features")


@pytest.fixture(scope="module")
def optimizers_results(out):
    return _run(out, "optimizers")


@pytest.fixture(scope="module")
def bp_cost_results(out):
    return _run(out, "bp-cost")


def test_masked_width_equals_a_narrower_network():
    """Model i of the masked width-256 run is, to 1e-6, jaxbp.fit of the width-m network."""
    ds = data.regression_1d(jax.random.key(0), np.sin, n=120, noise=0.0, name="sin")
    net = jaxbp.Net(activation="sigmoid", head="squared")  # σ(0) ≠ 0: W columns need the mask
    widths = np.array([1, 5, 32, 256])
    init_keys = jax.random.split(jax.random.key(1), len(widths))
    key, lr = jax.random.key(2), optax.cosine_decay_schedule(1e-2, 40)
    many = universal.fit_widths(
        net, ds.X_train, ds.y_train, widths, init_keys, key=key, epochs=5, batch_size=16,
        learning_rate=lr,
    )  # fmt: skip
    start = universal.init_padded(net, init_keys, widths, d=1, out=1, max_width=256)
    for i, m in enumerate(widths):
        wide = jax.tree.map(lambda a, i=i: a[i], many.params)
        narrow0 = jax.tree.map(lambda a, i=i: a[i], start)
        narrow0 = jaxbp.Params(narrow0.V[:m], narrow0.W[:, :m], narrow0.b[:m], narrow0.c)
        one = jaxbp.fit(
            net, narrow0, ds.X_train, ds.y_train, optimizer=optax.adam(lr), epochs=5,
            batch_size=16, key=key, progress=False,
        )  # fmt: skip
        kept = jaxbp.Params(wide.V[:m], wide.W[:, :m], wide.b[:m], wide.c)
        chex.assert_trees_all_close(kept, one.params, atol=1e-6, rtol=0)
        assert not jnp.any(wide.V[m:]) and not jnp.any(wide.W[:, m:]) and not jnp.any(wide.b[m:])
        np.testing.assert_allclose(np.asarray(many.history["loss"])[:, i], one.history["loss"],
                                   rtol=1e-6)  # fmt: skip


def test_universal_error_falls_with_width(universal_results):
    r = universal_results
    assert r["widths"][0] == 1 and r["widths"][-1] >= 256
    assert len(r["targets"]) == 4
    for name, t in r["targets"].items():
        assert len(t["test_mse"]) == len(r["widths"])
        assert t["test_mse"][-1] * 10 <= t["test_mse"][0], name


def test_features_make_circles_linear(features_results):
    circles = features_results["datasets"]["circles"]
    assert circles["probe_x"] <= 0.75
    assert circles["probe_z"] >= 0.95
    assert set(features_results["datasets"]) == {"circles", "xor", "moons", "spirals"}
    for r in features_results["datasets"].values():
        for key in ("probe_x", "probe_z", "probe_random_z"):
            assert 0 <= r[key] <= 1


def test_every_optimizer_lowers_the_loss(optimizers_results):
    opts = optimizers_results["optimizers"]
    assert set(opts) == {"gd", "nesterov_gd", "sgd", "momentum", "adagrad", "rmsprop", "adam"}
    for name, per in opts.items():
        for ds_name, r in per.items():
            assert r["lr"] in r["lrs"], (name, ds_name)
            assert len(r["loss"]) == len(r["grad_evals"]) == len(r["seconds"])
            assert r["loss"][-1] < r["loss"][0], (name, ds_name)


def test_backprop_is_cheap_and_finite_differences_are_not(bp_cost_results):
    r = bp_cost_results
    assert r["fd_method"]
    for P, fwd, bp in zip(r["params"], r["forward_s"], r["bp_s"], strict=True):
        assert bp <= 4 * fwd, f"P={P}: BP {bp:.2e} s vs forward {fwd:.2e} s"
    assert r["fd_s"][-1] >= 50 * r["bp_s"][-1]


def test_cli_arguments():
    import argparse

    parser = argparse.ArgumentParser()
    experiments.add_arguments(parser)
    args = parser.parse_args(["bp-cost", "--quick", "--seed", "3", "--out", "x"])
    assert (args.name, args.quick, args.seed, str(args.out)) == ("bp-cost", True, 3, "x")
    with pytest.raises(SystemExit):
        parser.parse_args(["nope"])
