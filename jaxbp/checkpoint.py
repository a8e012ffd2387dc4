"""Checkpoints without pickle: one ``.npz`` file holding arrays and a JSON document.

A checkpoint is a single NumPy ``.npz`` archive written by :func:`numpy.savez` and
read back without unpickling (:class:`jaxbp.npzio.Archive`). It holds:

- ``params.V``, ``params.W`` and, when present, ``params.b``, ``params.c``;
- ``opt_state.0``, ``opt_state.1``, … the leaves of the optax state, in
  ``jax.tree_util.tree_leaves`` order;
- ``key``: ``jax.random.key_data(key)`` (or a raw ``uint32`` legacy key);
- ``__meta__``: a UTF-8 JSON document stored as a ``uint8`` array, describing
  the rest: format name and version, the :class:`~jaxbp.Net` configuration, every
  array's shape and dtype, the optimizer state's tree structure, the PRNG key's
  implementation, the epoch, the training history and a free ``config`` dict.

:func:`save` writes through :func:`jaxbp.atomic.write_with`: a crash or an error
mid-write leaves the previous checkpoint intact, and temporary files that a killed
writer left for the same path are removed by the next :func:`save` or :func:`load`.

What is refused. :func:`load` raises :class:`CheckpointError` (a ``ValueError``,
one line naming the file and the problem) for any damaged or foreign file, never
another exception; and for fields that disagree: arrays against the metadata,
shapes against the network, the optimizer state against a template, NaN or inf in
the parameters, or a history that disagrees with the epoch. A history with an
``"epoch"`` column must have every other column of the same length, except the
event entries :data:`SCALAR_HISTORY_KEYS` (``best_epoch``, ``diverged_epoch``, lists
of epoch numbers), and its epochs must be ints >= 0 that strictly increase to
``epoch`` (so there are at most ``epoch + 1``) — unless ``best_epoch`` is present
(early stopping rolls θ back): then ``epoch`` is the last ``epoch`` or the last
``best_epoch``. :func:`save` refuses (``ValueError``) to write what :func:`load`
would refuse.

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

import dataclasses
import itertools
import json
import math
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp import atomic
from jaxbp.model import Net
from jaxbp.npzio import (
    Archive,
    ArchiveError,
    check_json_keys,
    host,
    json_columns,
    json_default,
    key_from_array,
    key_to_array,
    parse_spec,
    short_repr,
    spec,
    to_stored,
    tree_from_archive,
    tree_to_arrays,
    write_npz,
)
from jaxbp.params import Params
from jaxbp.runs import files
from jaxbp.validate import check_params

FORMAT = "jaxbp-checkpoint"
VERSION = 1

_META = "__meta__"
_KEY = "key"
_PARAM_FIELDS = Params._fields  # ("V", "W", "b", "c")

SCALAR_HISTORY_KEYS = ("best_epoch", "diverged_epoch")
"""History entries that are not per-epoch columns (``jaxbp.fit`` appends them on events)."""


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
# Names, history


def _param_name(field: str) -> str:
    return f"params.{field}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _history_problem(history: dict[str, list], epoch: int) -> str | None:
    """How ``history`` disagrees with itself or with ``epoch``; ``None`` if it agrees."""
    for name in SCALAR_HISTORY_KEYS:
        if not all(_is_int(v) and v >= 0 for v in history.get(name, [])):
            return f"history[{name!r}] must hold epoch numbers (ints >= 0)"
    if "epoch" not in history:
        return None
    epochs = history["epoch"]
    for name, values in history.items():
        if name not in SCALAR_HISTORY_KEYS and len(values) != len(epochs):
            return f"history[{name!r}] has {len(values)} entries, history['epoch'] {len(epochs)}"
    if not epochs:
        return None
    if not all(_is_int(v) and v >= 0 for v in epochs):
        return "history['epoch'] must hold epoch numbers (ints >= 0)"
    best = history.get("best_epoch")
    if best:  # early stopping rolled θ back to the best epoch
        if epoch not in (epochs[-1], best[-1]):
            return (
                f"epoch is {epoch}, but history['epoch'] ends at {epochs[-1]} and "
                f"history['best_epoch'] at {best[-1]}"
            )
        return None
    if epochs[-1] != epoch:
        return f"epoch is {epoch}, but history['epoch'] ends at {epochs[-1]}"
    if any(a >= b for a, b in itertools.pairwise(epochs)):
        return "history['epoch'] is not strictly increasing"
    return None


def _finite_problem(field: str, array: np.ndarray) -> str | None:
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    return f"params.{field} holds {bad} non-finite values (NaN or inf)" if bad else None


# ---------------------------------------------------------------------------
# save


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
    folder=None,
) -> pathlib.Path:
    """Write a checkpoint to ``path`` atomically, replacing any file there.

    The name is used as given (no suffix is added; ``.npz`` is conventional).
    Missing parent folders are created. If anything fails, the previous file at
    ``path`` is left untouched and no temporary file remains (see :mod:`jaxbp.atomic`;
    temporary files a killed writer left for ``path`` are removed first).

    Args:
        path: destination file.
        net: the :class:`jaxbp.Net` configuration.
        params: θ, a :class:`jaxbp.Params` whose shapes fit ``net``.
        opt_state: an optax state (any pytree of arrays) or ``None``.
        epoch: completed epochs, a non-negative int.
        key: a typed PRNG key (``jax.random.key``), a raw ``uint32`` key
            (``jax.random.PRNGKey``), or ``None``.
        history: ``{name: sequence of float | int | None}``; NumPy/JAX scalars are
            converted to Python numbers (floats round-trip exactly). With an ``"epoch"``
            column it must agree with ``epoch`` (see the module doc).
        config: a JSON-serialisable dict with str keys (e.g. the CLI's arguments);
            tuples come back as lists.
        folder: the :class:`jaxbp.runs.RunFolder` writing ``path`` as one of its files
            (listed in its manifest); ``None`` for a checkpoint on its own.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: non-finite params, a negative epoch, or a history that disagrees
            with itself or with ``epoch``: nothing :func:`load` would refuse is written.
        TypeError: arguments of the wrong type, or a config that is not JSON.
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
    check_json_keys(config, "config")

    arrays: dict[str, np.ndarray] = {}
    param_meta: dict[str, dict | None] = {}
    for field in _PARAM_FIELDS:
        value = getattr(params, field)
        if value is None:
            param_meta[field] = None
            continue
        array = host(value, f"params.{field}")
        problem = _finite_problem(field, array)
        if problem:
            raise ValueError(f"cannot save a checkpoint: {problem}")
        param_meta[field] = spec(array)
        arrays[_param_name(field)] = to_stored(array)
    dtypes = {entry["dtype"] for entry in param_meta.values() if entry is not None}
    if len(dtypes) != 1:
        raise ValueError(f"params must share one dtype, got {sorted(dtypes)}")

    opt_meta = None
    if opt_state is not None:
        opt_meta, leaves = tree_to_arrays(opt_state, "opt_state")
        arrays.update(leaves)

    key_meta = None
    if key is not None:
        key_meta, data = key_to_array(key)
        arrays[_KEY] = data

    history = json_columns(history, "history")
    problem = _history_problem(history, int(epoch))
    if problem:
        raise ValueError(f"cannot save a checkpoint: {problem}")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "jax_version": jax.__version__,
        "net": dataclasses.asdict(net),
        "params": param_meta,
        "epoch": int(epoch),
        "opt_state": opt_meta,
        "key": key_meta,
        "history": history,
        "config": config,
    }
    try:
        text = json.dumps(meta, default=json_default, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as err:
        raise TypeError(f"checkpoint metadata is not JSON-serialisable: {err}") from err
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    def writer(f):
        write_npz(f, arrays)

    if folder is not None:
        return folder.write(path.name, writer)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_file(path, writer, overwrite=True, own_run=path.parent)
    return path


# ---------------------------------------------------------------------------
# load


def _read_meta(archive: Archive) -> dict:
    if _META not in archive.files:
        raise ArchiveError(f"no {_META!r} member: not a {FORMAT} file")
    meta = archive.read_json(_META)
    if not isinstance(meta, dict):
        raise ArchiveError(f"metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ArchiveError(f"format is {short_repr(meta.get('format'))}, expected {FORMAT!r}")
    version = meta.get("version")
    if not _is_int(version) or version != VERSION:
        newer = _is_int(version) and version > VERSION
        raise ArchiveError(
            f"format version {short_repr(version)} is not supported (this jaxbp reads version "
            f"{VERSION}" + ("; the file was written by a newer jaxbp)" if newer else ")")
        )
    missing = {"net", "params", "epoch", "opt_state", "key", "history", "config"} - set(meta)
    if missing:
        raise ArchiveError(f"metadata lacks {sorted(missing)}")
    if not isinstance(meta["params"], dict) or set(meta["params"]) != set(_PARAM_FIELDS):
        raise ArchiveError(f"params metadata must have exactly the fields {list(_PARAM_FIELDS)}")
    opt = meta["opt_state"]
    if opt is not None and not (
        isinstance(opt, dict)
        and isinstance(opt.get("treedef"), str)
        and isinstance(opt.get("leaves"), list)
    ):
        raise ArchiveError("optimizer-state metadata must hold 'treedef' and a list of 'leaves'")
    epoch = meta["epoch"]
    if not _is_int(epoch) or epoch < 0:
        raise ArchiveError(f"epoch must be a non-negative int, got {short_repr(epoch)}")
    if not isinstance(meta["config"], dict):
        raise ArchiveError(f"config must be a JSON object, got {type(meta['config']).__name__}")
    return meta


def _read_net(cfg) -> Net:
    if not isinstance(cfg, dict):
        raise ArchiveError(f"net config must be a JSON object, got {short_repr(cfg)}")
    for name, value in cfg.items():
        if not (value is None or isinstance(value, str | int | float)) or isinstance(value, bool):
            raise ArchiveError(
                f"net config field {name!r} has an invalid value {short_repr(value)}"
            )
    slope = cfg.get("negative_slope", 0.01)
    if not isinstance(slope, int | float) or not math.isfinite(slope):
        raise ArchiveError(
            f"net config negative_slope must be a finite number, got {short_repr(slope)}"
        )
    try:
        return Net(**cfg)
    except (TypeError, ValueError, KeyError) as err:
        raise ArchiveError(f"net config {short_repr(cfg)} is not a valid jaxbp.Net: {err}") from err


def _read_params(archive: Archive, net: Net, meta: dict) -> Params:
    values = {}
    for field in _PARAM_FIELDS:
        entry = meta[field]
        if entry is None:
            if field in ("V", "W"):
                raise ArchiveError(f"params.{field} is missing")
            values[field] = None
            continue
        shape, dtype = parse_spec(entry, f"params.{field}")
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ArchiveError(f"params.{field} must be floating point, got {dtype.name}")
        values[field] = archive.restore(_param_name(field), shape, dtype, f"params.{field}")
        problem = _finite_problem(field, values[field])
        if problem:
            raise ArchiveError(problem)
    dtypes = {v.dtype.name for v in values.values() if v is not None}
    if len(dtypes) != 1:
        raise ArchiveError(f"params have mixed dtypes {sorted(dtypes)}")
    try:
        check_params(net, Params(**values))
    except (TypeError, ValueError) as err:
        raise ArchiveError(f"params do not fit the network {net}: {err}") from err
    return Params(**{f: None if v is None else jnp.asarray(v) for f, v in values.items()})


def _read_opt_state(archive: Archive, meta, like):
    if meta is None:
        if like is not None:
            raise ArchiveError("holds no optimizer state, but opt_state_like was given")
        return None
    return tree_from_archive(archive, "opt_state", meta, like, "optimizer state")


def _read_history(history, epoch: int) -> dict:
    if not isinstance(history, dict):
        raise ArchiveError(f"history must be a JSON object, got {type(history).__name__}")
    for name, values in history.items():
        if not isinstance(values, list) or not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
        ):
            raise ArchiveError(f"history[{short_repr(name)}] must be a list of numbers or null")
    problem = _history_problem(history, epoch)
    if problem:
        raise ArchiveError(f"history disagrees with the checkpoint: {problem}")
    return history


def _expected_members(meta: dict) -> set[str]:
    names = {_META}
    names |= {_param_name(f) for f in _PARAM_FIELDS if meta["params"][f] is not None}
    if meta["opt_state"] is not None:
        names |= {f"opt_state.{i}" for i in range(len(meta["opt_state"]["leaves"]))}
    if meta["key"] is not None:
        names.add(_KEY)
    return names


def load(path, *, opt_state_like=None) -> Checkpoint:
    """Read and check a checkpoint written by :func:`save`. Never unpickles.

    Stale temporary files that a killed :func:`save` left for ``path`` are removed
    (:func:`jaxbp.atomic.remove_stale_temps`).

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
            ``opt_state_like``. Damaged bytes never raise anything else.
    """
    path = pathlib.Path(path)
    atomic.remove_stale_temps(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r}: no such file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r}: not a regular file")
    try:
        with Archive(path) as archive:
            meta = _read_meta(archive)
            extra = set(archive.files) - _expected_members(meta)
            if extra:
                raise ArchiveError(f"unexpected members {short_repr(sorted(extra))}")
            net = _read_net(meta["net"])
            params = _read_params(archive, net, meta["params"])
            opt_state = _read_opt_state(archive, meta["opt_state"], opt_state_like)
            key = None if meta["key"] is None else key_from_array(archive, _KEY, meta["key"])
            history = _read_history(meta["history"], meta["epoch"])
    except ArchiveError as err:
        message = " ".join(str(err).split())  # one line, whatever the file held
        raise CheckpointError(f"checkpoint {str(path)!r}: {message}") from err
    return Checkpoint(net, params, opt_state, meta["epoch"], key, history, meta["config"])
