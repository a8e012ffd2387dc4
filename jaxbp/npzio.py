"""Arrays in ``.npz`` archives and numbers in JSON, for :mod:`jaxbp.checkpoint`.

Writing uses :func:`numpy.savez` (uncompressed members ``NAME.npy``). Reading goes
through :class:`Archive`, which never unpickles and turns *every* way a damaged or
foreign file can fail (a bad zip directory, an unsupported compression method or zip
version, a CRC mismatch, duplicate member names, a bad ``.npy`` header, trailing
bytes) into an :class:`ArchiveError` with a one-line message.

Arrays whose dtype NumPy cannot describe in an ``.npy`` header (``bfloat16`` and the
other ``ml_dtypes``) are stored as unsigned integers of the same width
(:func:`to_stored`) and viewed back with :func:`stored_dtype`.
"""

from __future__ import annotations

import io
import json
import math
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp.runs.files import member_limit

_NPY_MAGIC = b"\x93NUMPY"
META_LIMIT = 64 * 2**20  # a checkpoint's JSON (its history grows with the epochs)


class ArchiveError(ValueError):
    """An archive is unreadable, or what it holds is not what its reader expects.

    Readers (e.g. :func:`jaxbp.checkpoint.load`) raise it for any problem with a file's
    contents and add the file's name when they report it.
    """


# ---------------------------------------------------------------------------
# Arrays


def is_native(dtype: np.dtype) -> bool:
    """Whether an ``.npy`` header describes ``dtype`` faithfully (bfloat16 & co. are not)."""
    return dtype.kind in "biufc" and np.dtype(dtype.str) == dtype


def stored_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype ``dtype`` is written with: itself, or an unsigned int of its width."""
    return dtype if is_native(dtype) else np.dtype(f"uint{8 * dtype.itemsize}")


def spec(array: np.ndarray) -> dict:
    """The metadata entry describing ``array``: ``{"shape": [...], "dtype": name}``."""
    return {"shape": list(array.shape), "dtype": array.dtype.name}


def to_stored(array: np.ndarray) -> np.ndarray:
    """The array as written to the npz: native dtypes as they are, others as uint views."""
    return array if is_native(array.dtype) else array.view(stored_dtype(array.dtype))


def host(value, what: str) -> np.ndarray:
    """A leaf as a C-ordered NumPy array of a numeric dtype (no object arrays)."""
    array = np.asarray(jax.device_get(value))
    if not (array.dtype.kind in "biufc" or jnp.issubdtype(array.dtype, jnp.number)):
        raise TypeError(f"{what} must be a numeric array, got dtype {array.dtype}")
    return np.asarray(array, order="C")


def write_npz(fileobj, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to an open binary file as an uncompressed ``.npz``."""
    np.savez(fileobj, **arrays)


class Archive:
    """The members of an ``.npz`` file, read on demand; every failure an ArchiveError.

    Opening checks the zip directory: no duplicate names, only ``.npy`` members stored
    uncompressed, sizes that fit in the file. :meth:`read` checks the member's CRC and
    parses its ``.npy`` header with pickling disabled.
    """

    def __init__(self, path):
        try:
            with open(path, "rb") as f:
                head = f.read(len(_NPY_MAGIC))
                size = f.seek(0, io.SEEK_END)
        except OSError as err:
            raise ArchiveError(f"cannot open: {type(err).__name__}: {err}") from err
        if head == _NPY_MAGIC:
            raise ArchiveError("a single .npy array, not an .npz archive")
        try:
            self._zip = zipfile.ZipFile(path)
            infos = self._zip.infolist()
        except Exception as err:  # any parse failure of untrusted bytes is "corrupt"
            raise ArchiveError(_corrupt(err)) from err
        try:
            self._infos = self._check_directory(infos, size)
        except BaseException:
            self._zip.close()
            raise
        self.files = list(self._infos)

    @staticmethod
    def _check_directory(infos, size: int) -> dict[str, zipfile.ZipInfo]:
        names = [info.filename for info in infos]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ArchiveError(f"duplicate members {duplicates}")
        members, total = {}, 0
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise ArchiveError(f"member {info.filename!r} is not an .npy array")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ArchiveError(
                    f"member {info.filename!r} is compressed (method {info.compress_type}); "
                    "expected stored members as numpy.savez writes them"
                )
            if info.compress_size != info.file_size:
                raise ArchiveError(
                    f"member {info.filename!r} is stored with {info.compress_size} bytes but "
                    f"claims {info.file_size} (corrupt zip directory)"
                )
            if info.file_size > member_limit():
                raise ArchiveError(
                    f"member {info.filename!r} claims {info.file_size} bytes, more than the "
                    f"{member_limit()} that may be read (limit or free memory)"
                )
            total += info.file_size
            members[info.filename[: -len(".npy")]] = info
        if total > size:
            raise ArchiveError(
                f"members claim {total} bytes, more than the file's {size} (truncated?)"
            )
        return members

    def read(self, name: str) -> np.ndarray:
        """The member ``name`` (without ``.npy``) as an array; never unpickles."""
        if name not in self._infos:
            raise ArchiveError(f"no member {name!r}")
        try:
            data = self._zip.read(self._infos[name])
            buffer = io.BytesIO(data)
            _check_header_size(buffer, len(data))
            array = np.lib.format.read_array(buffer, allow_pickle=False)
        except Exception as err:  # damaged bytes can fail in many ways; all are "corrupt"
            raise ArchiveError(f"cannot read array {name!r}: {_describe(err)}") from err
        if buffer.tell() != len(data):
            raise ArchiveError(f"array {name!r} has {len(data) - buffer.tell()} trailing bytes")
        return array

    def restore(self, name: str, shape: tuple[int, ...], dtype: np.dtype, what: str):
        """The member ``name``, checked against (shape, dtype), viewed as ``dtype``."""
        stored = self.read(name)
        if stored.dtype != stored_dtype(dtype) or stored.shape != shape:
            raise ArchiveError(
                f"{what} is stored with shape {stored.shape} and dtype {stored.dtype}, but the "
                f"metadata says shape {short_repr(shape)} and dtype {dtype.name}"
            )
        if dtype.itemsize == 8 and not jax.config.jax_enable_x64:
            raise ArchiveError(
                f"{what} is {dtype.name}; enable 64-bit JAX (jax.config.update("
                "'jax_enable_x64', True) or JAX_ENABLE_X64=1) to load it without rounding"
            )
        return stored if is_native(dtype) else stored.view(dtype)

    def read_json(self, name: str):
        """The member ``name``, a 1-D ``uint8`` array of UTF-8 JSON, decoded (at most 64 MiB)."""
        info = self._infos.get(name)
        if info is not None and info.file_size > META_LIMIT:
            size = info.file_size
            raise ArchiveError(f"{name!r} holds {size} bytes of JSON (at most {META_LIMIT})")
        raw = self.read(name)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ArchiveError(f"{name!r} must be a 1-D uint8 array, got {raw.dtype} {raw.shape}")
        try:
            return json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, huge int literals
            raise ArchiveError(f"{name!r} is not valid UTF-8 JSON: {err}") from err
        except RecursionError as err:
            raise ArchiveError(f"{name!r} holds JSON nested too deeply") from err

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tree_to_arrays(tree, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
    """A pytree as (metadata entry, ``{f"{prefix}.{i}": leaf i}`` in ``tree_leaves`` order)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    arrays = {f"{prefix}.{i}": host(leaf, f"{prefix} leaf {i}") for i, leaf in enumerate(leaves)}
    entry = {"treedef": str(treedef), "leaves": [spec(a) for a in arrays.values()]}
    return entry, {name: to_stored(a) for name, a in arrays.items()}


def _leaf_spec(leaf) -> tuple[tuple[int, ...], np.dtype]:
    dtype = getattr(leaf, "dtype", None)
    return tuple(np.shape(leaf)), np.dtype(dtype if dtype is not None else np.asarray(leaf).dtype)


def tree_from_archive(archive: Archive, prefix: str, entry, like, what: str):
    """The pytree :func:`tree_to_arrays` stored, checked against the template ``like``.

    The leaves must match ``like``'s structure, shapes and dtypes; they are returned in
    its structure, each on its template leaf's sharding. With ``like=None`` only the
    entry is checked and ``None`` is returned.
    """
    if not (isinstance(entry, dict) and isinstance(entry.get("leaves"), list)):
        raise ArchiveError(f"{what} metadata must hold 'treedef' and a list of 'leaves'")
    specs = [parse_spec(e, f"{what} leaf {i}") for i, e in enumerate(entry["leaves"])]
    if like is None:
        return None
    template, treedef = jax.tree_util.tree_flatten(like)
    if entry.get("treedef") != str(treedef):
        raise ArchiveError(
            f"{what} does not match the template: saved structure "
            f"{short_repr(entry.get('treedef'), 200)}, template structure {str(treedef)!r}"
        )
    if len(specs) != len(template):
        raise ArchiveError(f"{what} has {len(specs)} leaves, the template {len(template)}")
    leaves = []
    for i, ((shape, dtype), like_leaf) in enumerate(zip(specs, template, strict=True)):
        like_shape, like_dtype = _leaf_spec(like_leaf)
        if (shape, dtype) != (like_shape, like_dtype):
            raise ArchiveError(
                f"{what} leaf {i} has shape {shape} and dtype {dtype.name}, but the template's "
                f"has shape {like_shape} and dtype {like_dtype.name}"
            )
        array = archive.restore(f"{prefix}.{i}", shape, dtype, f"{what} leaf {i}")
        if isinstance(like_leaf, jax.Array):
            leaves.append(jax.device_put(array, like_leaf.sharding))
        else:
            leaves.append(jnp.asarray(array))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def key_to_array(key) -> tuple[dict, np.ndarray]:
    """A PRNG key as (metadata entry, uint32 array): typed keys by their data and impl."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = host(jax.random.key_data(key), "key data")
        return {"kind": "typed", "impl": str(jax.random.key_impl(key)), **spec(data)}, data
    data = host(key, "key")
    if data.dtype != np.uint32 or data.ndim < 1:
        raise TypeError(
            "key must be a typed PRNG key (jax.random.key) or a raw uint32 key "
            f"(jax.random.PRNGKey), got dtype {data.dtype} and shape {data.shape}"
        )
    return {"kind": "raw", "impl": None, **spec(data)}, data


def key_from_array(archive: Archive, name: str, entry) -> jax.Array:
    """The key :func:`key_to_array` described by ``entry`` and stored as member ``name``."""
    if not isinstance(entry, dict) or entry.get("kind") not in ("typed", "raw"):
        raise ArchiveError(f"key metadata must have kind 'typed' or 'raw', got {short_repr(entry)}")
    shape, dtype = parse_spec(entry, "key")
    if dtype != np.uint32 or not shape:
        raise ArchiveError(f"key data must be a uint32 array, got {dtype.name} of shape {shape}")
    data = archive.restore(name, shape, dtype, "key")
    if entry["kind"] == "raw":
        return jnp.asarray(data)
    impl = entry.get("impl")
    if not isinstance(impl, str):
        raise ArchiveError(f"key impl must be a name, got {short_repr(impl)}")
    try:
        return jax.random.wrap_key_data(data, impl=impl)
    except Exception as err:  # unknown impl names and wrong data shapes fail variously
        raise ArchiveError(
            f"cannot restore a {short_repr(impl)} key from data of shape {shape}: {err}"
        ) from err


def parse_spec(entry, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """Validate a ``{"shape": [...], "dtype": name}`` entry read from metadata."""
    if not isinstance(entry, dict) or not {"shape", "dtype"} <= set(entry):
        raise ArchiveError(
            f"metadata for {what} must hold 'shape' and 'dtype', got {short_repr(entry)}"
        )
    shape, name = entry["shape"], entry["dtype"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ArchiveError(f"metadata for {what} has an invalid shape {short_repr(shape)}")
    try:
        dtype = np.dtype(jnp.dtype(name)) if isinstance(name, str) else None
    except Exception:  # NumPy's dtype parser fails in many ways on odd strings
        dtype = None
    if dtype is None or dtype.name != name or not jnp.issubdtype(dtype, jnp.number):
        raise ArchiveError(f"metadata for {what} has an invalid dtype {short_repr(name)}")
    return tuple(shape), dtype


def short_repr(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: what a file holds may be huge."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_header_size(buffer: io.BytesIO, size: int) -> None:
    """Refuse an ``.npy`` header claiming more data than the member holds (before allocating)."""
    version = np.lib.format.read_magic(buffer)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f".npy format version {version} is not supported")
    read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
    shape, _, dtype = read_header(buffer)
    if math.prod(shape) * dtype.itemsize > size:
        raise ValueError(f"header claims shape {shape} of {dtype}, more than {size} bytes")
    buffer.seek(0)


def _describe(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())  # one line


def _corrupt(err: BaseException) -> str:
    return f"not a readable .npz archive (truncated or corrupt?): {_describe(err)}"


# ---------------------------------------------------------------------------
# JSON


def json_number(value, what: str):
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


def json_columns(columns, what: str) -> dict[str, list]:
    """``{name: sequence of numbers}`` (e.g. a training history) as JSON-ready lists."""
    if columns is None:
        return {}
    if not isinstance(columns, dict):
        raise TypeError(f"{what} must be a dict of lists, got {type(columns).__name__}")
    out = {}
    for name, values in columns.items():
        if not isinstance(name, str):
            raise TypeError(f"{what} keys must be str, got {name!r}")
        if hasattr(values, "shape"):
            values = np.asarray(jax.device_get(values)).tolist()
        if not isinstance(values, list | tuple):
            raise TypeError(f"{what}[{name!r}] must be a list, got {type(values).__name__}")
        out[name] = [json_number(v, f"{what}[{name!r}][{i}]") for i, v in enumerate(values)]
    return out


def json_default(value):
    """Let NumPy/JAX scalars through ``json.dumps`` as Python numbers."""
    if isinstance(value, np.generic) or (hasattr(value, "shape") and np.shape(value) == ()):
        return np.asarray(jax.device_get(value)).item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def check_json_keys(value, where: str) -> None:
    """JSON silently turns non-str keys into str; refuse them so that config round-trips."""
    stack, seen = [(value, where)], set()
    while stack:  # iterative: deep nesting must not hit the recursion limit
        value, where = stack.pop()
        if isinstance(value, dict | list | tuple):
            if id(value) in seen:  # a cycle: json.dumps reports it
                continue
            seen.add(id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise TypeError(f"{where} has a non-str key {k!r}; JSON keys must be str")
                stack.append((v, f"{where}[{k!r}]"))
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
