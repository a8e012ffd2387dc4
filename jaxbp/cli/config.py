"""The typed run: one frozen :class:`RunConfig` describes what ``jaxbp train`` does.

It is built once from the command line and the data (:meth:`RunConfig.from_args`),
checked once (``__post_init__``), written to and read from the run folder's
``config.json`` with every field checked (:meth:`RunConfig.to_json`,
:meth:`RunConfig.from_json`), and it is the only thing the command layer hands to
the library: the network, the optimizer with its schedule and weight decay, the
initial parameters and the data all come from its methods.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jaxbp import names

if TYPE_CHECKING:  # JAX is imported by the methods that need it: `jaxbp --help` stays fast
    import jax

    from jaxbp.model import Net
    from jaxbp.params import Params

FORMAT = "jaxbp-run"
VERSION = 1
VALIDATION_FRACTION = 0.1  # held out of the training split by a single run
# Flags that may differ on --resume; every other run-defining flag must match the run.
CHANGEABLE_ON_RESUME = ("epochs", "devices")


class ConfigError(ValueError):
    """A run configuration (flags or config.json) that cannot describe a run."""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; defaults are ``jaxbp train``'s.

    The first group comes from the flags, the second (``d`` … ``scaler``) from the data.
    ``data`` is a data set name or an absolute file path, so that the run folder
    works from any working directory. ``batch_size`` None means full batch.
    """

    data: str = "digits"
    target: str | None = None
    activation: str = "relu"
    hidden: int = 64
    head: str | None = None
    output: str | None = None
    bias: bool = True
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    epochs: int = 40
    batch_size: int | None = 32
    grad: str = "matrix"
    weight_decay: float = 0.0
    early_stopping: int | None = None
    seed: int = 0
    seeds: int = 1
    x64: bool = False
    bf16: bool = False
    devices: int | None = None
    class_weight: str | None = None  # "balanced": class c weighs n / (C n_c) in the loss
    weight_column: str | None = None  # a CSV column of sample weights
    d: int | None = None
    out: int | None = None
    task: str | None = None
    classes: tuple | None = None
    scaler: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    features: tuple[str, ...] | None = None  # CSV column names, matched by name on predict
    run_id: str | None = None  # random, made when the run is created (jaxbp.runs.new_run_id)
    fingerprint: str | None = None  # of the training data (jaxbp.runs.fingerprint)

    def __post_init__(self):
        for name, check, want in _FIELDS:
            value = getattr(self, name)
            if not check(value):
                raise ConfigError(f"{name} must be {want}, got {value!r}")
        if self.bf16 and self.x64:
            raise ConfigError("--bf16 and --x64 exclude each other (bf16 products, f64 params?)")
        takes = names.OUTPUT_MAP_HEADS  # Head.takes_output_map, without importing JAX
        if self.head is not None and self.output is not None and self.head not in takes:
            raise ConfigError(
                f"--output applies to --head {' / '.join(takes)} only, not --head {self.head}"
            )
        if self.d is not None and self.scaler is not None:
            if not all(len(part) == self.d for part in self.scaler):
                raise ConfigError(f"scaler must hold d={self.d} means and stds")
            if not all(math.isfinite(v) for part in self.scaler for v in part):
                raise ConfigError("scaler holds a non-finite mean or std")
            if not all(v > 0 for v in self.scaler[1]):
                raise ConfigError("scaler holds a std <= 0")
        if self.features is not None and self.d is not None and len(self.features) != self.d:
            raise ConfigError(f"features must name d={self.d} columns, got {len(self.features)}")
        if self.class_weight is not None and self.task == "regression":
            raise ConfigError("--class-weight balanced applies to classification only")
        if self.weight_column is not None and Path(self.data).suffix.lower() != ".csv":
            raise ConfigError(f"--weight-column names a CSV column; {self.data} is not a .csv file")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes must be distinct, got {list(self.classes)}")

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_flags(cls, flags: dict) -> RunConfig:
        """A config from the flags the user gave (None = not given, the default applies)."""
        given = {k: v for k, v in flags.items() if v is not None and k in _FLAG_NAMES}
        if "data" in given:
            given["data"] = resolve_data(given["data"])
        if given.get("batch_size") == "full":
            given["batch_size"] = None
        return cls(**given)

    def with_data(self, ds) -> RunConfig:
        """The config completed with what the data set says: head, sizes, classes, scaler."""
        from jaxbp import heads

        where = repr(ds.name)
        head = heads.for_task(self.head, ds.n_classes, where, called="--head {}")
        out = heads.get(head).width_for(ds.n_classes, where) if ds.n_classes else ds.n_outputs
        mean, std = ds.scaler if ds.scaler is not None else (np.zeros(ds.d), np.ones(ds.d))
        features = None
        if Path(self.data).suffix.lower() == ".csv":
            from jaxbp.data import csv_columns

            dropped = (self.target, self.weight_column)
            features = tuple(c for c in csv_columns(self.data) if c not in dropped)
        return dataclasses.replace(
            self,
            head=head,
            d=ds.d,
            out=out,
            task=ds.task,
            classes=None if ds.classes is None else tuple(np.asarray(ds.classes).tolist()),
            scaler=(
                tuple(np.asarray(mean, float).tolist()),
                tuple(np.asarray(std, float).tolist()),
            ),
            features=features,
        )

    def resumed_with(self, flags: dict) -> tuple[RunConfig, list[str]]:
        """This run's config with the flags given on ``--resume`` applied.

        Flags in :data:`CHANGEABLE_ON_RESUME` are applied (and listed in the returned
        notes); any other flag that differs from the run's value is refused.
        """
        given = RunConfig.from_flags(flags)
        changes, notes = {}, []
        for name in _FLAG_NAMES:
            if flags.get(name) is None:
                continue
            value, old = getattr(given, name), getattr(self, name)
            if value == old:
                continue
            if name not in CHANGEABLE_ON_RESUME:
                raise ConfigError(
                    f"--{name.replace('_', '-')} {_shown(value)} contradicts the run's "
                    f"{name}={_shown(old)}; a resumed run keeps its configuration "
                    f"(only {', '.join('--' + c for c in CHANGEABLE_ON_RESUME)} may change). "
                    "Start a new run with --out for other settings"
                )
            changes[name] = value
            notes.append(f"--{name.replace('_', '-')}: {_shown(old)} → {_shown(value)}")
        return dataclasses.replace(self, **changes), notes

    # -- what the library gets --------------------------------------------------------------
    @property
    def dtype(self):
        import jax.numpy as jnp

        return jnp.float64 if self.x64 else jnp.float32

    def net(self) -> Net:
        from jaxbp.model import Net

        return Net(
            activation=self.activation, head=self.head, output=self.output,
            matmul_dtype="bfloat16" if self.bf16 else None,
        )  # fmt: skip

    def make_optimizer(self, n_train: int, *, validation: bool = True):
        """The optax optimizer, its schedule's horizon the steps ``fit`` will run.

        ``n_train`` is the training split's size; ``validation`` says whether ``fit``
        holds out :data:`VALIDATION_FRACTION` of it first.
        """
        from jaxbp import optimizers
        from jaxbp.train import steps_per_epoch, training_size

        n = training_size(n_train, VALIDATION_FRACTION if validation else None)
        lr = optimizers.schedule(
            self.schedule, self.lr, steps_per_epoch=steps_per_epoch(n, self.batch_size),
            epochs=self.epochs,
        )  # fmt: skip
        return optimizers.make(self.optimizer, lr, weight_decay=self.weight_decay)

    def init_params(self, net: Net, key) -> Params:
        from jaxbp.params import init

        return init(
            net, key, d=self.d, hidden=self.hidden, out=self.out, bias=self.bias,
            dtype=self.dtype,
        )  # fmt: skip

    def keys(self, seed: int | None = None) -> tuple[jax.Array, jax.Array]:
        """(init key, fit key) of a seed: fold_in(key(seed), 0) and fold_in(key(seed), 1)."""
        import jax

        base = jax.random.key(self.seed if seed is None else seed)
        return jax.random.fold_in(base, 0), jax.random.fold_in(base, 1)

    def data_task(self) -> str | None:
        """The task the data is read with: from ``--head``, else the explicit integral rule."""
        if Path(self.data).suffix.lower() not in (".csv", ".npz"):
            return None
        if self.head is None:
            from jaxbp.data.files import INTEGRAL

            return INTEGRAL
        return "regression" if self.head == "squared" else "classification"

    def load_data(self):
        import jax

        from jaxbp import data

        return data.load(
            self.data, key=jax.random.key(self.seed), target=self.target,
            task=self.data_task(), weight_column=self.weight_column,
        )  # fmt: skip

    def sample_weights(self, y, column=None) -> np.ndarray | None:
        """The weights sᵢ of samples with class ids (or targets) ``y`` in L = Σ sᵢℓᵢ / Σ sᵢ.

        ``column``: the data's weight column (``--weight-column``), or None. With
        ``--class-weight balanced``, each is multiplied by n / (C · n_c) for its class c,
        counted on these samples (every class then weighs the same in total). None when
        neither applies.
        """
        weights = None if column is None else np.asarray(column, np.float64)
        if self.class_weight == "balanced":
            if self.task != "classification":
                raise ConfigError("--class-weight balanced applies to classification only")
            y = np.asarray(y)
            counts = np.bincount(y)  # n_c; C = the classes present
            per_class = len(y) / (np.count_nonzero(counts) * np.maximum(counts, 1))
            weights = per_class[y] if weights is None else weights * per_class[y]
        return weights

    def standardise(self, X_raw: np.ndarray, where: str = "the input") -> np.ndarray:
        """Raw features (n, d) standardised with the run's scaler, in the run's dtype.

        A value that is NaN or inf, or that overflows the run's dtype once standardised,
        is refused, naming its row (1-based) and column.
        """
        from jaxbp.data import standardise

        scaler = tuple(np.asarray(part) for part in self.scaler)
        if X_raw.ndim != 2 or X_raw.shape[1] != self.d:
            raise ConfigError(
                f"{where} has {X_raw.shape[-1]} features but the run was trained on d={self.d}"
            )
        with np.errstate(all="ignore"):
            X = standardise(np.asarray(X_raw, np.float64), scaler, np.dtype(self.dtype))
        bad = ~np.isfinite(X)
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            column = repr(self.features[j]) if self.features else f"{j + 1} (of {self.d})"
            raise ConfigError(
                f"{where}: row {i + 1}, column {column} holds {X_raw[i, j]!r}, which is "
                f"non-finite or overflows {np.dtype(self.dtype).name} once standardised"
            )
        return X

    # -- config.json ------------------------------------------------------------------------
    def to_json(self) -> str:
        doc = {"format": FORMAT, "version": VERSION} | dataclasses.asdict(self)
        doc["batch_size"] = "full" if self.batch_size is None else self.batch_size
        if self.scaler is not None:
            doc["scaler"] = {"mean": list(self.scaler[0]), "std": list(self.scaler[1])}
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str = "config.json") -> RunConfig:
        """Parse and check a ``config.json``; every problem is a one-line ConfigError."""
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as err:
            raise ConfigError(f"{where} is not valid JSON: {str(err)[:120]}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{where} must hold a JSON object, got {type(doc).__name__}")
        if doc.get("format", FORMAT) != FORMAT or doc.get("version", VERSION) != VERSION:
            raise ConfigError(f"{where} is not a {FORMAT} version {VERSION} file")
        if doc.get("seeds") is not None and isinstance(doc["seeds"], list):  # older sweeps
            doc["seeds"] = len(doc["seeds"])
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(name for name in _REQUIRED if name not in doc)
        if missing:
            raise ConfigError(f"{where} lacks the fields {missing}")
        values = {k: doc[k] for k in fields if k in doc}
        values["batch_size"] = _batch_from_json(values.get("batch_size", 32), where)
        if values.get("classes") is not None:
            if not isinstance(values["classes"], list):
                raise ConfigError(f"{where}: classes must be a list, got {values['classes']!r:.60}")
            values["classes"] = tuple(values["classes"])
        scaler = values.get("scaler")
        if scaler is not None:
            if not (
                isinstance(scaler, dict)
                and all(isinstance(scaler.get(k), list) for k in ("mean", "std"))
                and all(_is_real(v) for k in ("mean", "std") for v in scaler[k])
            ):
                raise ConfigError(f"{where}: scaler must be {{'mean': [...], 'std': [...]}}")
            values["scaler"] = (tuple(scaler["mean"]), tuple(scaler["std"]))
        if values.get("features") is not None:
            names = values["features"]
            if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
                raise ConfigError(f"{where}: features must be a list of column names")
            values["features"] = tuple(names)
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


def resolve_data(spec: str) -> str:
    """A data set name as it is; a file path made absolute (the run works from anywhere)."""
    if Path(spec).suffix.lower() not in (".csv", ".npz"):
        return spec  # a name (or a mistake that data.load will name)
    return str(Path(spec).expanduser().resolve())


def _shown(value) -> str:
    return "full" if value is None else str(value)


def _batch_from_json(value, where: str) -> int | None:
    if value in ("full", None):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not _is_int(value) or value < 1:
        raise ConfigError(
            f"{where}: batch_size must be a positive integer or 'full', got {value!r}"
        )
    return int(value)


def _name_in(names):
    return lambda v: isinstance(v, str) and v in names


def _optional(check):
    return lambda v: v is None or check(v)


def _positive_int(v) -> bool:
    return _is_int(v) and v >= 1


_FIELDS = (
    ("data", lambda v: isinstance(v, str) and v != "", "a data set name or a file path"),
    ("target", _optional(lambda v: isinstance(v, str)), "a column name or null"),
    ("activation", _name_in(names.ACTIVATIONS), f"one of {', '.join(names.ACTIVATIONS)}"),
    ("hidden", _positive_int, "a positive integer"),
    ("head", _optional(_name_in(names.HEADS)), f"one of {', '.join(names.HEADS)}"),
    ("output", _optional(_name_in(names.ACTIVATIONS)), "an activation name or null"),
    ("bias", lambda v: isinstance(v, bool), "true or false"),
    ("optimizer", _name_in(names.OPTIMIZERS), f"one of {', '.join(names.OPTIMIZERS)}"),
    ("lr", lambda v: _is_real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    ("schedule", _name_in(names.SCHEDULES), f"one of {', '.join(names.SCHEDULES)}"),
    ("epochs", _positive_int, "a positive integer"),
    ("batch_size", _optional(_positive_int), "a positive integer or 'full'"),
    ("grad", _name_in(names.GRADIENT_METHODS), f"one of {', '.join(names.GRADIENT_METHODS)}"),
    ("weight_decay", lambda v: _is_real(v) and math.isfinite(v) and v >= 0, "a number >= 0"),
    ("early_stopping", _optional(_positive_int), "a positive integer or null"),
    ("seed", lambda v: _is_int(v) and 0 <= v < 2**63, "an integer >= 0"),
    ("seeds", _positive_int, "a positive integer"),
    ("x64", lambda v: isinstance(v, bool), "true or false"),
    ("bf16", lambda v: isinstance(v, bool), "true or false"),
    ("devices", _optional(_positive_int), "a positive integer or null"),
    ("class_weight", _optional(_name_in(("balanced",))), "'balanced' or null"),
    ("weight_column", _optional(lambda v: isinstance(v, str)), "a column name or null"),
    ("d", _optional(_positive_int), "a positive integer"),
    ("out", _optional(_positive_int), "a positive integer"),
    ("task", _optional(_name_in(("classification", "regression"))), "classification/regression"),
    ("classes", _optional(lambda v: isinstance(v, tuple) and len(v) >= 2), "a list of >= 2 labels"),
    ("scaler", _optional(lambda v: isinstance(v, tuple) and len(v) == 2), "(mean, std)"),
    ("run_id", _optional(lambda v: isinstance(v, str) and 0 < len(v) <= 64), "a run id or null"),
    ("fingerprint", _optional(lambda v: isinstance(v, str) and len(v) <= 200), "a string"),
)
_FLAG_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig))[:22]
_REQUIRED = ("data", "activation", "hidden", "head", "d", "out", "task", "scaler")
