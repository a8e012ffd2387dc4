"""Checkpoints: bit-exact round trips, atomic writes, and refusal of bad files (no pickle)."""

from __future__ import annotations

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxbp
from jaxbp import checkpoint
from jaxbp.checkpoint import CheckpointError

NET = jaxbp.Net(activation="tanh", head="softmax")
OPTIMIZERS = {
    "adam": lambda: optax.adam(1e-2),
    "sgd": lambda: optax.sgd(1e-2),
    "sgd-momentum": lambda: optax.sgd(1e-2, momentum=0.9),
}


def _params(bias=False, hidden=4, dtype=np.float32, seed=0):
    """θ from NumPy (cheap: no JAX compilation), with values that test bit-exactness."""
    rng = np.random.default_rng(seed)

    def draw(*shape):
        a = rng.standard_normal(shape).astype(dtype)
        a.flat[0] = -0.0  # equal to 0.0 under ==, but not bit-identical
        a.flat[-1] = jnp.finfo(dtype).smallest_subnormal
        return jnp.asarray(a)

    V, W = draw(hidden, 3), draw(2, hidden)
    return jaxbp.Params(V, W, draw(hidden), draw(2)) if bias else jaxbp.Params(V, W)


def _filled(state, seed=1):
    """``state`` with every leaf replaced by arbitrary values of its shape and dtype."""
    rng = np.random.default_rng(seed)

    def fill(leaf):
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.floating):
            return jnp.asarray(rng.standard_normal(a.shape).astype(a.dtype))
        return jnp.asarray(a + 3)

    return jax.tree_util.tree_map(fill, state)


def _trained(optimizer, params, seed=1):
    """(params, state) with a non-trivial optimizer state for ``params``."""
    return params, _filled(optimizer.init(params), seed)


def _bits(a):
    a = np.asarray(a)
    return a.view(f"uint{8 * a.dtype.itemsize}") if a.dtype.kind == "f" else a


def _assert_same_tree(got, want):
    """Same structure, and every leaf bit-identical with the same dtype."""
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert isinstance(a, jax.Array)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
        assert np.array_equal(_bits(a), _bits(b))


def _refused(path, match, **kwargs):
    """load(path) raises a CheckpointError naming the file and matching ``match``."""
    with pytest.raises(CheckpointError, match=match) as info:
        checkpoint.load(path, **kwargs)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    return info.value


def _members(path):
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _meta(members):
    return json.loads(members["__meta__"].tobytes().decode())


def _rewrite(path, members, meta=None):
    """Write ``members`` (and ``meta`` as __meta__, if given) as a fresh npz at ``path``."""
    members = dict(members)
    if meta is not None:
        members["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)


@pytest.fixture
def saved(tmp_path):
    """A checkpoint with adam state, a key and a history; returns (path, params, state)."""
    optimizer = OPTIMIZERS["adam"]()
    params, state = _trained(optimizer, _params(bias=True))
    path = checkpoint.save(
        tmp_path / "run.npz",
        net=NET,
        params=params,
        opt_state=state,
        epoch=2,
        key=jax.random.key(7),
        history={"loss": [0.5, 0.25]},
    )
    return path, params, state


# ---------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_round_trip_is_bit_exact(tmp_path, bias, name):
    optimizer = OPTIMIZERS[name]()
    params, state = _trained(optimizer, _params(bias=bias))
    key = jax.random.key(42)
    history = {  # no "epoch" column: free-form columns of any length
        "loss": [1 / 3, np.float32(0.1), jnp.float32(2.5e-8), None, float("nan")],
        "accuracy": [None, 0.75],
    }
    config = {"lr": 0.01, "epochs": 3, "data": "xor", "layers": [3, 4, 2], "x": None}
    path = checkpoint.save(
        tmp_path / "ckpt.npz",
        net=NET,
        params=params,
        opt_state=state,
        epoch=5,
        key=key,
        history=history,
        config=config,
    )
    assert path == tmp_path / "ckpt.npz"

    ckpt = checkpoint.load(path, opt_state_like=optimizer.init(_params(bias=bias)))
    assert isinstance(ckpt, checkpoint.Checkpoint)
    assert ckpt.net == NET and ckpt.epoch == 5 and ckpt.config == config
    assert (ckpt.params.b is None) == (not bias) and (ckpt.params.c is None) == (not bias)
    _assert_same_tree(ckpt.params, params)
    _assert_same_tree(ckpt.opt_state, state)
    assert jnp.issubdtype(ckpt.key.dtype, jax.dtypes.prng_key)
    assert np.array_equal(jax.random.key_data(ckpt.key), jax.random.key_data(key))
    assert ckpt.history["loss"][:4] == [
        1 / 3,
        float(np.float32(0.1)),
        float(np.float32(2.5e-8)),
        None,
    ]
    assert np.isnan(ckpt.history["loss"][4])
    assert ckpt.history["accuracy"] == [None, 0.75]
    # An "epoch" column must end at the checkpoint's epoch; NumPy ints come back as int.
    path = checkpoint.save(
        tmp_path / "epochs.npz", net=NET, params=params, epoch=2,
        history={"epoch": [0, 1, np.int64(2)], "loss": [3.0, 2.0, 1.0]},
    )  # fmt: skip
    ckpt = checkpoint.load(path)
    assert ckpt.history["epoch"] == [0, 1, 2] and type(ckpt.history["epoch"][2]) is int


def test_round_trip_float64_is_bit_exact(tmp_path):
    with jax.enable_x64(True):
        optimizer = optax.adam(1e-3)
        params, state = _trained(optimizer, _params(bias=True, dtype=np.float64))
        assert params.V.dtype == jnp.float64
        path = checkpoint.save(tmp_path / "f64.npz", net=NET, params=params, opt_state=state)
        ckpt = checkpoint.load(path, opt_state_like=optimizer.init(params))
        _assert_same_tree(ckpt.params, params)
        _assert_same_tree(ckpt.opt_state, state)
    # Without 64-bit JAX the arrays would be rounded to float32: refused, not rounded.
    _refused(path, "float64.*jax_enable_x64")


def test_round_trip_bfloat16_is_bit_exact(tmp_path):
    params = _params(bias=True, dtype=jnp.bfloat16)
    path = checkpoint.save(tmp_path / "bf16.npz", net=NET, params=params)
    _assert_same_tree(checkpoint.load(path).params, params)


def test_defaults_and_no_template(tmp_path):
    params, state = _trained(optax.adam(1e-3), _params())
    path = checkpoint.save(tmp_path / "c.npz", net=NET, params=params, opt_state=state)
    ckpt = checkpoint.load(str(path))
    assert ckpt.opt_state is None and ckpt.key is None
    assert ckpt.epoch == 0 and ckpt.history == {} and ckpt.config == {}


@pytest.mark.parametrize(
    "make_key",
    [lambda: jax.random.PRNGKey(3), lambda: jax.random.key(3, impl="rbg")],
    ids=["raw-uint32", "typed-rbg"],
)
def test_key_kinds_round_trip(tmp_path, make_key):
    key = make_key()
    path = checkpoint.save(tmp_path / "k.npz", net=NET, params=_params(), key=key)
    got = checkpoint.load(path).key
    assert got.dtype == key.dtype
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        assert jax.random.key_impl(got) == jax.random.key_impl(key)
        got, key = jax.random.key_data(got), jax.random.key_data(key)
    assert np.array_equal(got, key)


def test_file_layout_is_plain_npz_with_json_meta(saved):
    path, params, state = saved
    members = _members(path)  # allow_pickle=False
    assert members["__meta__"].dtype == np.uint8
    meta = _meta(members)
    assert meta["format"] == checkpoint.FORMAT == "jaxbp-checkpoint"
    assert meta["version"] == checkpoint.VERSION == 1
    assert meta["net"] == {
        "activation": "tanh",
        "head": "softmax",
        "output": None,
        "negative_slope": 0.01,
        "matmul_dtype": None,
    }
    assert meta["params"]["V"] == {"shape": [4, 3], "dtype": "float32"}
    assert meta["opt_state"]["treedef"] == str(jax.tree_util.tree_structure(state))
    assert len(meta["opt_state"]["leaves"]) == len(jax.tree_util.tree_leaves(state))
    assert meta["key"]["impl"] == "threefry2x32"
    assert np.array_equal(members["params.V"], params.V)


def test_save_refuses_bad_arguments(tmp_path):
    params = _params()
    path = tmp_path / "x.npz"
    with pytest.raises(TypeError, match="history"):
        checkpoint.save(path, net=NET, params=params, history={"loss": ["high"]})
    with pytest.raises(TypeError, match="non-str key"):
        checkpoint.save(path, net=NET, params=params, config={1: "a"})
    with pytest.raises(TypeError, match="JSON"):
        checkpoint.save(path, net=NET, params=params, config={"f": object()})
    with pytest.raises(ValueError, match="epoch"):
        checkpoint.save(path, net=NET, params=params, epoch=-1)
    with pytest.raises(ValueError, match="columns"):
        checkpoint.save(path, net=NET, params=params._replace(W=jnp.ones((2, 5))))
    assert not path.exists()


# ---------------------------------------------------------------------------
# Atomic write


@pytest.mark.parametrize("where", ["replace", "fsync", "savez"])
def test_failed_write_keeps_previous_checkpoint(saved, monkeypatch, where):
    path, params, state = saved
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("simulated crash")

    target = {"replace": (os, "replace"), "fsync": (os, "fsync"), "savez": (np, "savez")}[where]
    monkeypatch.setattr(*target, boom)
    new_params, new_state = _trained(optax.adam(1e-2), _params(bias=True, seed=5), seed=5)
    with pytest.raises(OSError, match="simulated crash"):
        checkpoint.save(path, net=NET, params=new_params, opt_state=new_state, epoch=3)
    monkeypatch.undo()

    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files
    assert path.read_bytes() == before
    ckpt = checkpoint.load(path, opt_state_like=state)
    assert ckpt.epoch == 2
    _assert_same_tree(ckpt.params, params)
    _assert_same_tree(ckpt.opt_state, state)


def test_save_replaces_and_creates_folders(saved):
    path, params, _ = saved
    checkpoint.save(path, net=NET, params=params, epoch=9)
    assert checkpoint.load(path).epoch == 9
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    nested = checkpoint.save(path.parent / "a" / "b.npz", net=NET, params=params)
    assert checkpoint.load(nested).epoch == 0


# ---------------------------------------------------------------------------
# Refusals: missing, corrupt, foreign files


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.npz", "no such file")


@pytest.mark.parametrize("keep", [0.5, 0.0, 0.99])
def test_truncated_file(saved, keep):
    path = saved[0]
    data = path.read_bytes()
    cut = path.with_name("cut.npz")
    cut.write_bytes(data[: int(len(data) * keep)])
    _refused(cut, "truncated or corrupt")


def test_random_garbage(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(path, "not a readable")


def test_corrupted_member_bytes(saved):
    """A flipped byte inside an array fails the zip CRC check."""
    path = saved[0]
    data = bytearray(path.read_bytes())
    at = data.index(b"params.V.npy") + 200  # inside params.V's data
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    _refused(path, "params.V|CRC|corrupt")


def test_plain_npy_or_foreign_npz(tmp_path):
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(3))
    _refused(npy, "not an .npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    _refused(foreign, "__meta__")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(version=2), "version 2.*newer"),
        (lambda m: m.update(version="1"), "version '1'"),
        (lambda m: m.update(format="other"), "format"),
        (lambda m: m.pop("opt_state"), "lacks"),
        (lambda m: m.update(epoch=-1), "epoch"),
        (lambda m: m.update(history={"loss": ["x"]}), "history"),
        (lambda m: m.update(config=[1]), "config"),
        (lambda m: m["net"].update(activation="nope"), "not a valid jaxbp.Net"),
        (lambda m: m["net"].update(bogus=1), "not a valid jaxbp.Net"),
        (lambda m: m["net"].update(negative_slope="x"), "negative_slope"),
        (lambda m: m["net"].update(head="logistic"), "do not fit"),  # K=2 for logistic
        (lambda m: m["params"]["V"].update(shape=[5, 3]), "metadata says"),
        (lambda m: m["params"]["V"].update(dtype="float16"), "metadata says"),
        (lambda m: m["params"]["V"].update(dtype="object"), "invalid dtype"),
        (lambda m: m["params"].update(b=None), "unexpected members"),
        (lambda m: m["params"].update(W=None), "unexpected members.*params.W"),
        (lambda m: m["key"].update(impl="nope"), "key"),
    ],
)
def test_bad_metadata(saved, edit, match):
    path = saved[0]
    members = _members(path)
    meta = _meta(members)
    edit(meta)
    _rewrite(path, members, meta)
    _refused(path, match)


def test_bad_json(saved):
    path = saved[0]
    members = _members(path)
    members["__meta__"] = np.frombuffer(b"{not json", dtype=np.uint8)
    _rewrite(path, members)
    _refused(path, "JSON")


def test_extra_or_missing_member(saved):
    path = saved[0]
    members = _members(path)
    _rewrite(path, {**members, "extra": np.zeros(2)})
    _refused(path, "unexpected members.*extra")
    del members["params.c"]
    _rewrite(path, members)
    _refused(path, "params.c")


def test_missing_weight_matrix(saved):
    path = saved[0]
    members = _members(path)
    meta = _meta(members)
    meta["params"]["W"] = None
    del members["params.W"]
    _rewrite(path, members, meta)
    _refused(path, "params.W is missing")


def test_shapes_that_disagree_with_each_other(saved):
    """Arrays that match their metadata but not each other (W must be (K, M))."""
    path = saved[0]
    members = _members(path)
    meta = _meta(members)
    members["params.W"] = np.zeros((2, 5), np.float32)
    meta["params"]["W"]["shape"] = [2, 5]
    _rewrite(path, members, meta)
    _refused(path, "do not fit.*columns")


def test_mixed_param_dtypes(saved):
    path = saved[0]
    members = _members(path)
    meta = _meta(members)
    members["params.b"] = members["params.b"].astype(np.float16)
    meta["params"]["b"]["dtype"] = "float16"
    _rewrite(path, members, meta)
    _refused(path, "mixed dtypes")


# ---------------------------------------------------------------------------
# Optimizer-state template


def test_opt_state_template_mismatch(saved):
    path, params, _ = saved
    _refused(path, "does not match the template", opt_state_like=optax.sgd(0.1, 0.9).init(params))
    wider = _params(bias=True, hidden=5)
    _refused(path, "leaf 1 has shape", opt_state_like=optax.adam(1e-3).init(wider))
    no_bias = _params(bias=False)
    _refused(path, "does not match the template", opt_state_like=optax.adam(1e-3).init(no_bias))
    with jax.enable_x64(True):
        f64 = _params(bias=True, dtype=np.float64)
        _refused(path, "dtype float32.*float64", opt_state_like=optax.adam(1e-3).init(f64))
    # The right template is accepted.
    assert checkpoint.load(path, opt_state_like=optax.adam(5.0).init(params)).opt_state


def test_template_without_saved_state(tmp_path):
    params = _params()
    path = checkpoint.save(tmp_path / "p.npz", net=NET, params=params)
    _refused(path, "no optimizer state", opt_state_like=optax.adam(1e-3).init(params))


def test_opt_state_leaf_disagrees_with_metadata(saved):
    path, _, state = saved
    members = _members(path)
    members["opt_state.1"] = members["opt_state.1"][:-1]
    _rewrite(path, members)
    _refused(path, "opt.*leaf 1|opt_state.1", opt_state_like=state)


# ---------------------------------------------------------------------------
# No pickle, ever

EXECUTED: list[str] = []


def _payload(tag):
    EXECUTED.append(tag)
    return tag


class _Boom:
    """Unpickling this calls ``_payload``: proof that code would run."""

    def __reduce__(self):
        return (_payload, ("pwned",))


@pytest.mark.parametrize("member", ["params.V", "__meta__", "opt_state.0", "key"])
def test_object_arrays_are_refused_without_unpickling(saved, member):
    path, _, state = saved
    members = _members(path)
    members[member] = np.array([_Boom(), 1], dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **members)  # numpy pickles object arrays on save
    EXECUTED.clear()
    err = _refused(path, re.escape(member) + "|__meta__", opt_state_like=state)
    assert "pickle" in str(err) or "uint8" in str(err)
    assert EXECUTED == []
