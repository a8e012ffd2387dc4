"""Checkpoints: bit-exact round trips, atomic writes, and refusal of bad files (no pickle)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxbp
from jaxbp import atomic, checkpoint
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


# ---------------------------------------------------------------------------
# Damaged files: one clear error, never another exception


def _assert_same_checkpoint(ckpt, params, state):
    _assert_same_tree(ckpt.params, params)
    _assert_same_tree(ckpt.opt_state, state)
    assert ckpt.epoch == 2 and ckpt.history == {"loss": [0.5, 0.25]} and ckpt.config == {}
    assert np.array_equal(jax.random.key_data(ckpt.key), jax.random.key_data(jax.random.key(7)))


def _one_line_refusal(err, path):
    assert type(err) is CheckpointError and str(path) in str(err) and "\n" not in str(err)


def test_bit_flips_anywhere_load_identical_or_refuse(saved):
    """One flipped bit at each of 300 positions spread over the whole file."""
    path, params, state = saved
    data = path.read_bytes()
    damaged = path.with_name("flipped.npz")
    outcomes = {"identical": 0, "refused": 0}
    for bit in np.linspace(0, 8 * len(data) - 1, 300).astype(int):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        damaged.write_bytes(bytes(flipped))
        try:
            ckpt = checkpoint.load(damaged, opt_state_like=state)
        except CheckpointError as err:
            _one_line_refusal(err, damaged)
            outcomes["refused"] += 1
        else:  # a flip in a field nothing reads (e.g. a zip timestamp)
            _assert_same_checkpoint(ckpt, params, state)
            outcomes["identical"] += 1
    assert outcomes["refused"] > 200, outcomes  # CRCs catch every flip in the data


def test_every_truncation_is_refused(saved):
    path, _, state = saved
    data = path.read_bytes()
    cut = path.with_name("cut.npz")
    for size in np.linspace(0, len(data) - 1, 60).astype(int):
        cut.write_bytes(data[:size])
        with pytest.raises(CheckpointError) as info:
            checkpoint.load(cut, opt_state_like=state)
        _one_line_refusal(info.value, cut)


def test_duplicate_members(saved):
    path = saved[0]
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("params.V.npy", members["params.V.npy"])
    _refused(path, r"duplicate members \['params.V.npy'\]")


def test_npy_header_claiming_more_data_than_stored(saved):
    """A crafted header must not make load allocate what the file does not hold."""
    path = saved[0]
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members["params.V.npy"] = members["params.V.npy"].replace(b"(4, 3)", b"(400000000000, 3)")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _refused(path, "params.V.*header claims shape")


def test_compressed_members_are_refused(saved):
    path = saved[0]
    members = _members(path)
    np.savez_compressed(path, **members)
    _refused(path, "compressed")


@pytest.mark.parametrize(
    "text, match",
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("[1, 2]", "JSON object, got list"),
        ("3", "JSON object, got int"),
        ("null", "JSON object, got NoneType"),
        ('"text"', "JSON object, got str"),
        ("1" * 5000, "not valid UTF-8 JSON"),  # longer than Python's int-parsing limit
        ("\udcff", "UTF-8"),
    ],
    ids=["deep-list", "deep-field", "list", "int", "null", "str", "huge-int", "not-utf8"],
)
def test_meta_that_is_not_a_json_object(saved, text, match):
    path = saved[0]
    members = _members(path)
    raw = text.encode("utf-8", "surrogateescape")
    members["__meta__"] = np.frombuffer(raw, dtype=np.uint8)
    _rewrite(path, members)
    _refused(path, match)


_ODD_VALUES = [None, True, -1, 2**70, 1.5, "x", [None], {"x": 1}]


def _json_paths(value, prefix=()):
    """Every (path, value) in a JSON tree, the root excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for k, v in items:
        yield (*prefix, k), v
        if isinstance(v, dict | list):
            yield from _json_paths(v, (*prefix, k))


def test_wrong_types_anywhere_in_the_metadata(saved):
    """Every node of the metadata replaced by values of other types: load or refuse."""
    path, _, state = saved
    members = _members(path)
    meta = _meta(members)
    damaged = path.with_name("odd.npz")
    loaded = refused = 0
    for where, _ in list(_json_paths(meta)):
        for odd in _ODD_VALUES:
            edited = json.loads(json.dumps(meta))
            node = edited
            for k in where[:-1]:
                node = node[k]
            node[where[-1]] = odd
            _rewrite(damaged, members, edited)
            try:
                checkpoint.load(damaged, opt_state_like=state)
                loaded += 1
            except CheckpointError as err:
                _one_line_refusal(err, damaged)
                refused += 1
    assert refused > 10 * loaded  # only free fields (jax_version, history values) may vary


# ---------------------------------------------------------------------------
# Fields that disagree with each other


@pytest.mark.parametrize("field", ["V", "W", "b", "c"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_params_are_refused(saved, field, bad):
    path, params, _ = saved
    members = _members(path)
    members[f"params.{field}"] = members[f"params.{field}"].copy()
    members[f"params.{field}"].flat[1] = bad
    _rewrite(path, members)
    _refused(path, rf"params\.{field} holds 1 non-finite")
    value = getattr(params, field)
    broken = params._replace(**{field: value.ravel().at[0].set(bad).reshape(value.shape)})
    with pytest.raises(ValueError, match=rf"params\.{field} holds 1 non-finite"):
        checkpoint.save(path.with_name("new.npz"), net=NET, params=broken)
    assert not path.with_name("new.npz").exists()


# (epoch, history) pairs as jaxbp.fit produces them: all accepted.
CONSISTENT = {
    "plain": (3, {"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.0], "val_loss": [None] * 3}),
    "resumed-without-history": (5, {"epoch": [4, 5], "loss": [2.0, 1.0]}),
    "initial-evaluation": (2, {"epoch": [0, 1, 2], "loss": [3.0, 2.0, 1.0]}),
    "early-stopped": (2, {"epoch": [1, 2, 3, 4], "loss": [4.0, 1.0, 2.0, 3.0], "best_epoch": [2]}),
    "resumed-after-early-stop": (
        3,
        {"epoch": [1, 2, 3, 4, 3], "loss": [4.0, 1.0, 2.0, 3.0, 0.5], "best_epoch": [2]},
    ),
    "diverged": (2, {"epoch": [1, 2], "loss": [2.0, 1.0], "diverged_epoch": [3]}),
    "diverged-at-first": (0, {"epoch": [], "loss": [], "diverged_epoch": [1]}),
    "no-epoch-column": (7, {"loss": [1.0], "accuracy": [0.5, 0.75]}),
    "empty": (4, {}),
}

# (epoch, history, message): refused by save (ValueError) and by load (CheckpointError).
INCONSISTENT = {
    "epoch-ahead": (3, {"epoch": [1, 2], "loss": [2.0, 1.0]}, "ends at 2"),
    "epoch-behind": (1, {"epoch": [1, 2], "loss": [2.0, 1.0]}, "ends at 2"),
    "short-column": (2, {"epoch": [1, 2], "loss": [1.0]}, r"history\['loss'\] has 1 entries"),
    "long-column": (2, {"epoch": [1, 2], "loss": [3.0, 2.0, 1.0]}, "has 3 entries"),
    "not-increasing": (2, {"epoch": [1, 3, 2], "loss": [1.0] * 3}, "strictly increasing"),
    "repeated": (2, {"epoch": [1, 2, 2], "loss": [1.0] * 3}, "strictly increasing"),
    "float-epochs": (2, {"epoch": [1.0, 2.0]}, "epoch numbers"),
    "null-epoch": (2, {"epoch": [1, None]}, "epoch numbers"),
    "negative-epoch": (2, {"epoch": [-1, 2]}, "epoch numbers"),
    "early-stop-other": (3, {"epoch": [1, 2, 4], "best_epoch": [2]}, "best_epoch"),
    "bad-best-epoch": (2, {"epoch": [1, 2], "best_epoch": [0.5]}, "best_epoch"),
    "bad-diverged-epoch": (2, {"diverged_epoch": [None]}, "diverged_epoch"),
}


@pytest.mark.parametrize("name", sorted(CONSISTENT))
def test_consistent_histories_round_trip(tmp_path, name):
    epoch, history = CONSISTENT[name]
    path = checkpoint.save(
        tmp_path / "h.npz", net=NET, params=_params(), epoch=epoch, history=history
    )
    ckpt = checkpoint.load(path)
    assert ckpt.epoch == epoch and ckpt.history == history


@pytest.mark.parametrize("name", sorted(INCONSISTENT))
def test_inconsistent_histories_are_refused(saved, name):
    epoch, history, match = INCONSISTENT[name]
    path = saved[0]
    new = path.with_name("new.npz")
    with pytest.raises(ValueError, match=match):
        checkpoint.save(new, net=NET, params=_params(), epoch=epoch, history=history)
    assert not new.exists()
    members = _members(path)
    meta = _meta(members)
    meta.update(epoch=epoch, history=history)
    _rewrite(path, members, meta)
    _refused(path, "history disagrees.*" + match)


def test_history_from_fit_round_trips(tmp_path):
    """A real ``jaxbp.fit`` history (with validation and early stopping) is accepted."""
    net = jaxbp.Net(activation="tanh", head="softmax")
    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    Y = (X[:, 0] > 0).astype(np.int32)
    optimizer = optax.sgd(0.5)
    result = jaxbp.fit(
        net, _params(), X, Y, optimizer=optimizer, epochs=6, batch_size=8,
        key=jax.random.key(0), validation=(X[:8], Y[:8]), early_stopping=1, progress=False,
    )  # fmt: skip
    path = checkpoint.save(
        tmp_path / "fit.npz", net=net, params=result.params, opt_state=result.opt_state,
        epoch=result.epoch, history=result.history,
    )  # fmt: skip
    ckpt = checkpoint.load(path, opt_state_like=optimizer.init(_params()))
    assert ckpt.epoch == result.epoch and ckpt.history == result.history


# ---------------------------------------------------------------------------
# Stale temporary files of killed writers


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("how", ["save", "load"])
def test_save_and_load_remove_stale_temps_of_that_path(saved, how):
    path, params, _ = saved
    folder, dead = path.parent, _dead_pid()
    stale = [atomic.temp_name(path.name, pid=dead) for _ in range(3)]
    kept = [
        atomic.temp_name("other.npz", pid=dead),
        atomic.temp_name(path.name + ".bak", pid=dead),
        atomic.temp_name(path.name, pid=1),  # a live writer's file in progress
        f".{path.name}.tmp",
        "notes.txt",
    ]
    for name in stale + kept:
        (folder / name).write_bytes(b"\0" * 1000)
    if how == "save":
        checkpoint.save(path, net=NET, params=params)
    else:
        checkpoint.load(path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([path.name, *kept])


_SAVE_LOOP = """
import sys, numpy as np, jaxbp
from jaxbp import checkpoint
net = jaxbp.Net(activation="tanh", head="softmax")
for epoch in range(1, 100_000):
    V = np.full((2000, 100), epoch, np.float32)
    W = np.full((2, 2000), epoch, np.float32)
    checkpoint.save(sys.argv[1], net=net, params=jaxbp.Params(V, W), epoch=epoch,
                    history={"epoch": list(range(1, epoch + 1))})
    print(epoch, flush=True)
"""


def test_kill_9_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    """``kill -9`` a process saving in a loop: the file is the last or the next save."""
    path = tmp_path / "checkpoint.npz"
    rng = np.random.default_rng(0)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    for attempt in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _SAVE_LOOP, str(path)],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            done = int(child.stdout.readline())  # the child's first save is complete
            time.sleep(rng.uniform(0.0, 0.3))  # then land somewhere in a later save
        finally:
            child.kill()  # SIGKILL: no cleanup runs
            child.wait()
        done = max([done, *(int(line) for line in child.stdout.read().split())])
        ckpt = checkpoint.load(path)  # also removes the killed writer's temp file
        assert ckpt.epoch in (done, done + 1), (attempt, done, ckpt.epoch)
        assert np.all(np.asarray(ckpt.params.V) == ckpt.epoch)
        assert ckpt.history["epoch"][-1] == ckpt.epoch
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
