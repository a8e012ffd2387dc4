"""Checkpoints without pickle: one ``.npz`` file holding arrays and a JSON document.

A checkpoint is a single NumPy ``.npz`` archive written by :func:`numpy.savez` and
read back with ``numpy.load(..., allow_pickle=False)``, so loading never executes
code. It holds:

- ``params.V``, ``params.W`` and, when present, ``params.b``, ``params.c``;
- ``opt_state.0``, ``opt_state.1``, … the leaves of the optax state, in
  ``jax.tree_util.tree_leaves`` order;
- ``key``: ``jax.random.key_data(key)`` (or a raw ``uint32`` legacy key);
- ``__meta__``: a UTF-8 JSON document stored as a ``uint8`` array, describing
  the rest: format name and version, the :class:`~jaxbp.Net` configuration, every
  array's shape and dtype, the optimizer state's tree structure, the PRNG key's
  implementation, the epoch, the training history and a free ``config`` dict.

The archive is written to a temporary file in the destination folder, flushed to
disk and renamed onto the final name with :func:`os.replace`, so a crash or an
error mid-write leaves the previous checkpoint intact: a reader sees the old file
or the new one, never a mixture.

:func:`load` checks everything it reads against the metadata and the metadata
against itself (shapes that fit the network, dtypes, the optimizer state's layout
against a template) and raises :class:`CheckpointError`, naming the file and the
problem, on any mismatch or corruption.

Arrays whose dtype NumPy cannot describe in an ``.npy`` header (``bfloat16`` and
the other ``ml_dtypes``) are stored as unsigned integers of the same width and
viewed back on load; every array round-trips bit-exactly.

Example:
    >>> import pathlib, tempfile, jax, optax, jaxbp
    >>> from jaxbp import checkpoint
    >>> net = jaxbp.Net(activation="relu", head="softmax")
    >>> params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)
    >>> optimizer = optax.adam(1e-3)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.npz"
    >>> path = checkpoint.save(path, net=net, params=params,
    ...                        opt_state=optimizer.init(params), epoch=3)
    >>> ckpt = checkpoint.load(path, opt_state_like=optimizer.init(params))
    >>> ckpt.net == net, ckpt.epoch
    (True, 3)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import tempfile
import zipfile
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp.model import Net
from jaxbp.params import Params
from jaxbp.validate import check_params

FORMAT = "jaxbp-checkpoint"
VERSION = 1

_META = "__meta__"
_KEY = "key"
_PARAM_FIELDS = Params._fields  # ("V", "W", "b", "c")
_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError, MemoryError)


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match what was asked of it."""


class Checkpoint(NamedTuple):
    """What :func:`load` returns.

    Attributes:
        net: the network configuration.
        params: θ as JAX arrays of the saved dtypes.
        opt_state: the optax state unflattened into ``opt_state_like``'s structure,
            or ``None`` when no template was given (or none was saved).
        epoch: the number of completed epochs.
        key: the PRNG key (typed, or raw ``uint32`` if a raw key was saved) or ``None``.
        history: ``{name: [float | int | None, ...]}``.
        config: the free configuration dict (e.g. the CLI's arguments).
    """

    net: Net
    params: Params
    opt_state: Any | None
    epoch: int
    key: jax.Array | None
    history: dict
    config: dict


# ---------------------------------------------------------------------------
# Arrays ↔ npz members


def _param_name(field: str) -> str:
    return f"params.{field}"


def _opt_name(i: int) -> str:
    return f"opt_state.{i}"


def _is_native(dtype: np.dtype) -> bool:
    """Whether an ``.npy`` header describes ``dtype`` faithfully (bfloat16 & co. are not)."""
    return dtype.kind in "biufc" and np.dtype(dtype.str) == dtype


def _spec(array: np.ndarray) -> dict:
    return {"shape": list(array.shape), "dtype": array.dtype.name}


def _to_stored(array: np.ndarray) -> np.ndarray:
    """The array as written to the npz: native dtypes as they are, others as uint views."""
    if _is_native(array.dtype):
        return array
    return array.view(f"uint{8 * array.dtype.itemsize}")


def _host(value, what: str) -> np.ndarray:
    """A leaf as a NumPy array of a numeric dtype (no object arrays)."""
    array = np.asarray(jax.device_get(value))
    if not (array.dtype.kind in "biufc" or jnp.issubdtype(array.dtype, jnp.number)):
        raise TypeError(f"{what} must be a numeric array, got dtype {array.dtype}")
    return np.asarray(array, order="C")


# ---------------------------------------------------------------------------
# JSON helpers


def _json_number(value, what: str):
    """A history entry as a Python int, float or None (NumPy/JAX scalars converted)."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{what} must be a number or None, got a bool")
    if isinstance(value, int | float):
        return value
    if hasattr(value, "shape") and hasattr(value, "dtype") and np.shape(value) == ():
        item = np.asarray(jax.device_get(value)).item()
        if isinstance(item, int | float) and not isinstance(item, bool):
            return item
    raise TypeError(f"{what} must be a number or None, got {type(value).__name__}")


def _history_to_json(history) -> dict[str, list]:
    if history is None:
        return {}
    if not isinstance(history, dict):
        raise TypeError(f"history must be a dict of lists, got {type(history).__name__}")
    out = {}
    for name, values in history.items():
        if not isinstance(name, str):
            raise TypeError(f"history keys must be str, got {name!r}")
        if hasattr(values, "shape"):
            values = np.asarray(jax.device_get(values)).tolist()
        if not isinstance(values, list | tuple):
            raise TypeError(f"history[{name!r}] must be a list, got {type(values).__name__}")
        out[name] = [_json_number(v, f"history[{name!r}][{i}]") for i, v in enumerate(values)]
    return out


def _json_default(value):
    """Let NumPy/JAX scalars through ``json.dumps`` as Python numbers."""
    if isinstance(value, np.generic) or (hasattr(value, "shape") and np.shape(value) == ()):
        return np.asarray(jax.device_get(value)).item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _check_json_keys(value, where: str) -> None:
    """JSON silently turns non-str keys into str; refuse them so that config round-trips."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-str key {k!r}; JSON keys must be str")
            _check_json_keys(v, f"{where}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json_keys(v, f"{where}[{i}]")


# ---------------------------------------------------------------------------
# save


def _key_entry(key) -> tuple[dict, np.ndarray]:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = _host(jax.random.key_data(key), "key data")
        return {"kind": "typed", "impl": str(jax.random.key_impl(key)), **_spec(data)}, data
    data = _host(key, "key")
    if data.dtype != np.uint32 or data.ndim < 1:
        raise TypeError(
            "key must be a typed PRNG key (jax.random.key) or a raw uint32 key "
            f"(jax.random.PRNGKey), got dtype {data.dtype} and shape {data.shape}"
        )
    return {"kind": "raw", "impl": None, **_spec(data)}, data


def _write_atomic(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temp file beside ``path``, fsync, then os.replace onto ``path``."""
    folder = path.parent
    try:
        mode = path.stat().st_mode & 0o777  # keep an existing checkpoint's permissions
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: pathlib.Path) -> None:
    """Make the rename durable where the platform allows opening a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(
    path,
    *,
    net: Net,
    params: Params,
    opt_state=None,
    epoch: int = 0,
    key=None,
    history=None,
    config=None,
) -> pathlib.Path:
    """Write a checkpoint to ``path`` atomically, replacing any file there.

    The name is used as given (no suffix is added; ``.npz`` is conventional).
    Missing parent folders are created. If anything fails, the previous file at
    ``path`` is left untouched and no temporary file remains.

    Args:
        path: destination file.
        net: the :class:`jaxbp.Net` configuration.
        params: θ, a :class:`jaxbp.Params` whose shapes fit ``net``.
        opt_state: an optax state (any pytree of arrays) or ``None``.
        epoch: completed epochs, a non-negative int.
        key: a typed PRNG key (``jax.random.key``), a raw ``uint32`` key
            (``jax.random.PRNGKey``), or ``None``.
        history: ``{name: sequence of float | int | None}``; NumPy/JAX scalars are
            converted to Python numbers (floats round-trip exactly).
        config: a JSON-serialisable dict with str keys (e.g. the CLI's arguments);
            tuples come back as lists.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    path = pathlib.Path(path)
    if not isinstance(net, Net):
        raise TypeError(f"net must be a jaxbp.Net, got {type(net).__name__}")
    check_params(net, params)
    if not isinstance(epoch, int | np.integer) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    _check_json_keys(config, "config")

    arrays: dict[str, np.ndarray] = {}
    param_meta: dict[str, dict | None] = {}
    for field in _PARAM_FIELDS:
        value = getattr(params, field)
        if value is None:
            param_meta[field] = None
            continue
        array = _host(value, f"params.{field}")
        param_meta[field] = _spec(array)
        arrays[_param_name(field)] = _to_stored(array)
    dtypes = {spec["dtype"] for spec in param_meta.values() if spec is not None}
    if len(dtypes) != 1:
        raise ValueError(f"params must share one dtype, got {sorted(dtypes)}")

    opt_meta = None
    if opt_state is not None:
        leaves, treedef = jax.tree_util.tree_flatten(opt_state)
        specs = []
        for i, leaf in enumerate(leaves):
            array = _host(leaf, f"opt_state leaf {i}")
            specs.append(_spec(array))
            arrays[_opt_name(i)] = _to_stored(array)
        opt_meta = {"treedef": str(treedef), "leaves": specs}

    key_meta = None
    if key is not None:
        key_meta, data = _key_entry(key)
        arrays[_KEY] = data

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "jax_version": jax.__version__,
        "net": dataclasses.asdict(net),
        "params": param_meta,
        "epoch": int(epoch),
        "opt_state": opt_meta,
        "key": key_meta,
        "history": _history_to_json(history),
        "config": config,
    }
    try:
        text = json.dumps(meta, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise TypeError(f"checkpoint metadata is not JSON-serialisable: {err}") from err
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, arrays)
    return path


# ---------------------------------------------------------------------------
# load


class _Reader:
    """Reads members of an open npz, turning every failure into a CheckpointError."""

    def __init__(self, path: pathlib.Path, npz):
        self.path = path
        self.npz = npz

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {str(self.path)!r}: {message}")

    def array(self, name: str) -> np.ndarray:
        try:
            return self.npz[name]
        except _READ_ERRORS as err:
            raise self.fail(f"cannot read array {name!r}: {type(err).__name__}: {err}") from err

    def spec(self, spec, what: str) -> tuple[tuple[int, ...], np.dtype]:
        """Validate a ``{"shape": [...], "dtype": name}`` entry of the metadata."""
        if not isinstance(spec, dict) or not {"shape", "dtype"} <= set(spec):
            raise self.fail(f"metadata for {what} must hold 'shape' and 'dtype', got {spec!r}")
        shape, name = spec["shape"], spec["dtype"]
        if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise self.fail(f"metadata for {what} has an invalid shape {shape!r}")
        try:
            dtype = np.dtype(jnp.dtype(name)) if isinstance(name, str) else None
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.name != name or not jnp.issubdtype(dtype, jnp.number):
            raise self.fail(f"metadata for {what} has an invalid dtype {name!r}")
        return tuple(shape), dtype

    def restore(self, name: str, shape: tuple[int, ...], dtype: np.dtype, what: str):
        """The member ``name``, checked against (shape, dtype), in its saved dtype."""
        stored = self.array(name)
        want = dtype if _is_native(dtype) else np.dtype(f"uint{8 * dtype.itemsize}")
        if stored.dtype != want or stored.shape != shape:
            raise self.fail(
                f"{what} is stored with shape {stored.shape} and dtype {stored.dtype}, but the "
                f"metadata says shape {shape} and dtype {dtype.name}"
            )
        array = stored if _is_native(dtype) else stored.view(dtype)
        if dtype.itemsize == 8 and not jax.config.jax_enable_x64:
            raise self.fail(
                f"{what} is {dtype.name}; enable 64-bit JAX (jax.config.update("
                "'jax_enable_x64', True) or JAX_ENABLE_X64=1) to load it without rounding"
            )
        return array


def _open(path: pathlib.Path):
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r}: no such file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r}: not a regular file")
    try:
        npz = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: not a readable .npz archive "
            f"(truncated or corrupt?): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CheckpointError(f"checkpoint {str(path)!r}: a single .npy array, not an .npz archive")
    return npz


def _read_meta(r: _Reader) -> dict:
    if _META not in r.npz.files:
        raise r.fail(f"no {_META!r} member: not a {FORMAT} file")
    raw = r.array(_META)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise r.fail(f"{_META!r} must be a 1-D uint8 array, got {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise r.fail(f"metadata is not valid UTF-8 JSON: {err}") from err
    if not isinstance(meta, dict):
        raise r.fail(f"metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise r.fail(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        newer = isinstance(version, int) and version > VERSION
        raise r.fail(
            f"format version {version!r} is not supported (this jaxbp reads version {VERSION}"
            + ("; the file was written by a newer jaxbp)" if newer else ")")
        )
    missing = {"net", "params", "epoch", "opt_state", "key", "history", "config"} - set(meta)
    if missing:
        raise r.fail(f"metadata lacks {sorted(missing)}")
    return meta


def _read_net(r: _Reader, cfg) -> Net:
    if not isinstance(cfg, dict):
        raise r.fail(f"net config must be a JSON object, got {cfg!r}")
    for name, value in cfg.items():
        if not (value is None or isinstance(value, str | int | float)) or isinstance(value, bool):
            raise r.fail(f"net config field {name!r} has an invalid value {value!r}")
    slope = cfg.get("negative_slope", 0.01)
    if not isinstance(slope, int | float) or not math.isfinite(slope):
        raise r.fail(f"net config negative_slope must be a finite number, got {slope!r}")
    try:
        return Net(**cfg)
    except (TypeError, ValueError, KeyError) as err:
        raise r.fail(f"net config {cfg!r} is not a valid jaxbp.Net: {err}") from err


def _read_params(r: _Reader, net: Net, meta) -> Params:
    if not isinstance(meta, dict) or set(meta) != set(_PARAM_FIELDS):
        raise r.fail(f"params metadata must have exactly the fields {list(_PARAM_FIELDS)}")
    values = {}
    for field in _PARAM_FIELDS:
        spec = meta[field]
        if spec is None:
            if field in ("V", "W"):
                raise r.fail(f"params.{field} is missing")
            values[field] = None
            continue
        shape, dtype = r.spec(spec, f"params.{field}")
        if not jnp.issubdtype(dtype, jnp.floating):
            raise r.fail(f"params.{field} must be floating point, got {dtype.name}")
        values[field] = r.restore(_param_name(field), shape, dtype, f"params.{field}")
    dtypes = {v.dtype.name for v in values.values() if v is not None}
    if len(dtypes) != 1:
        raise r.fail(f"params have mixed dtypes {sorted(dtypes)}")
    try:
        check_params(net, Params(**values))
    except (TypeError, ValueError) as err:
        raise r.fail(f"params do not fit the network {net}: {err}") from err
    return Params(**{f: None if v is None else jnp.asarray(v) for f, v in values.items()})


def _leaf_spec(leaf) -> tuple[tuple[int, ...], np.dtype]:
    dtype = getattr(leaf, "dtype", None)
    return tuple(np.shape(leaf)), np.dtype(dtype if dtype is not None else np.asarray(leaf).dtype)


def _read_opt_state(r: _Reader, meta, like):
    if like is None:
        return None
    if meta is None:
        raise r.fail("holds no optimizer state, but opt_state_like was given")
    if not isinstance(meta, dict) or not isinstance(meta.get("leaves"), list):
        raise r.fail("optimizer-state metadata must hold 'treedef' and a list of 'leaves'")
    template, treedef = jax.tree_util.tree_flatten(like)
    if meta.get("treedef") != str(treedef):
        raise r.fail(
            "optimizer state does not match the template: saved structure "
            f"{meta.get('treedef')!r}, template structure {str(treedef)!r}"
        )
    if len(meta["leaves"]) != len(template):
        raise r.fail(
            f"optimizer state has {len(meta['leaves'])} leaves, the template {len(template)}"
        )
    leaves = []
    for i, (spec, like_leaf) in enumerate(zip(meta["leaves"], template, strict=True)):
        what = f"optimizer-state leaf {i}"
        shape, dtype = r.spec(spec, what)
        like_shape, like_dtype = _leaf_spec(like_leaf)
        if (shape, dtype) != (like_shape, like_dtype):
            raise r.fail(
                f"{what} has shape {shape} and dtype {dtype.name}, but the template's has "
                f"shape {like_shape} and dtype {like_dtype.name}"
            )
        array = r.restore(_opt_name(i), shape, dtype, what)
        if isinstance(like_leaf, jax.Array):
            leaves.append(jax.device_put(array, like_leaf.sharding))
        else:
            leaves.append(jnp.asarray(array))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _read_key(r: _Reader, meta):
    if meta is None:
        return None
    if not isinstance(meta, dict) or meta.get("kind") not in ("typed", "raw"):
        raise r.fail(f"key metadata must have kind 'typed' or 'raw', got {meta!r}")
    shape, dtype = r.spec(meta, "key")
    if dtype != np.uint32 or not shape:
        raise r.fail(f"key data must be a uint32 array, got {dtype.name} of shape {shape}")
    data = r.restore(_KEY, shape, dtype, "key")
    if meta["kind"] == "raw":
        return jnp.asarray(data)
    impl = meta.get("impl")
    if not isinstance(impl, str):
        raise r.fail(f"key impl must be a name, got {impl!r}")
    try:
        return jax.random.wrap_key_data(data, impl=impl)
    except (TypeError, ValueError, KeyError) as err:
        raise r.fail(f"cannot restore a {impl!r} key from data of shape {shape}: {err}") from err


def _read_history(r: _Reader, history) -> dict:
    if not isinstance(history, dict):
        raise r.fail(f"history must be a JSON object, got {type(history).__name__}")
    for name, values in history.items():
        if not isinstance(values, list) or not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
        ):
            raise r.fail(f"history[{name!r}] must be a list of numbers or null")
    return history


def _expected_members(meta: dict) -> set[str]:
    names = {_META}
    params = meta["params"]
    names |= {_param_name(f) for f in _PARAM_FIELDS if params.get(f) is not None}
    opt = meta["opt_state"]
    if isinstance(opt, dict) and isinstance(opt.get("leaves"), list):
        names |= {_opt_name(i) for i in range(len(opt["leaves"]))}
    if meta["key"] is not None:
        names.add(_KEY)
    return names


def load(path, *, opt_state_like=None) -> Checkpoint:
    """Read and check a checkpoint written by :func:`save`. Never unpickles.

    Args:
        path: the checkpoint file.
        opt_state_like: a template optax state, e.g. ``optimizer.init(params)``.
            When given, the saved leaves must match its tree structure, leaf shapes
            and dtypes, and are returned in its structure (and on its leaves'
            shardings). When ``None``, ``opt_state`` is returned as ``None``.

    Returns:
        a :class:`Checkpoint`.

    Raises:
        CheckpointError: (a ``ValueError``) naming the file and the problem, if the
            file is missing, truncated, corrupt, of another format or version, or
            if its contents disagree with its metadata, the network, each other or
            ``opt_state_like``.
    """
    path = pathlib.Path(path)
    with _open(path) as npz:
        r = _Reader(path, npz)
        meta = _read_meta(r)
        if not isinstance(meta["params"], dict):
            raise r.fail("params metadata must be a JSON object")
        extra = set(npz.files) - _expected_members(meta)
        if extra:
            raise r.fail(f"unexpected members {sorted(extra)}")
        net = _read_net(r, meta["net"])
        params = _read_params(r, net, meta["params"])
        epoch = meta["epoch"]
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise r.fail(f"epoch must be a non-negative int, got {epoch!r}")
        opt_state = _read_opt_state(r, meta["opt_state"], opt_state_like)
        key = _read_key(r, meta["key"])
        history = _read_history(r, meta["history"])
        config = meta["config"]
        if not isinstance(config, dict):
            raise r.fail(f"config must be a JSON object, got {type(config).__name__}")
    return Checkpoint(
        net=net,
        params=params,
        opt_state=opt_state,
        epoch=epoch,
        key=key,
        history=history,
        config=config,
    )
