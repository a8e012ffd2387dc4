"""The page's controls as one checked value: :class:`Settings`.

Every value the browser sends is text or a JSON number; :func:`parse` converts each
with a one-line :class:`SettingsError` naming the control, then hands the network and
optimizer settings to :class:`jaxbp.cli.config.RunConfig`, whose own checks (the ones
``jaxbp train`` uses) decide what is valid. A bad value never reaches the session: the
page shows the message and the session keeps its previous settings.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from jaxbp import names
from jaxbp.cli.config import ConfigError, RunConfig

MAX_HIDDEN = 256  # the page draws every unit: M is capped for the browser, not the library
MAX_SAMPLES = 4000
MAX_CENTERS = 10
UPLOAD = "upload"
PLANE_DATA = names.PLANE_DATA
DATA_CHOICES = (*PLANE_DATA, "sine", "digits", "teacher", UPLOAD)
# The generators' own defaults: with these (and the 20 % test split) a session's data is
# exactly data.load(name, key=jax.random.key(seed)), what a run folder's config.json names.
DEFAULT_NOISE = {
    "moons": 0.1, "circles": 0.05, "spirals": 0.2, "xor": 0.1, "blobs": 0.5, "sine": 0.05,
    "teacher": 0.0,
}  # fmt: skip
DEFAULT_N = {name: 1000 for name in PLANE_DATA} | {"sine": 512, "teacher": 2000}
DEFAULT_CENTERS = 3
DEFAULT_TEST_FRACTION = 0.2
SPEEDS = ("1 step", "10 steps", "1 epoch", "2 epochs", "5 epochs", "10 epochs")


class SettingsError(ValueError):
    """A control value the playground cannot use; the message names the control."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a session trains: the data's controls and the run (net, optimizer) as a RunConfig.

    ``run`` is a :class:`RunConfig` without its data fields (``with_data`` fills them);
    its ``epochs`` is the schedule's horizon (cosine decays over that many epochs).
    ``head`` None means: chosen from the data.
    """

    data: str = "spirals"
    noise: float | None = None
    n: int | None = None
    centers: int = DEFAULT_CENTERS
    test_fraction: float = DEFAULT_TEST_FRACTION
    target: str | None = None
    run: RunConfig = dataclasses.field(
        default_factory=lambda: RunConfig(
            data="spirals", activation="tanh", hidden=16, optimizer="adam", lr=0.01,
            batch_size=32, epochs=500,
        )
    )  # fmt: skip

    @property
    def seed(self) -> int:
        return self.run.seed

    def is_default_data(self) -> bool:
        """Whether the data is exactly ``data.load(self.data, key=jax.random.key(seed))``."""
        if self.data == UPLOAD or self.test_fraction != DEFAULT_TEST_FRACTION:
            return False
        if self.data == "digits":
            return True
        return (
            self.noise in (None, DEFAULT_NOISE[self.data])
            and self.n in (None, DEFAULT_N[self.data])
            and (self.data != "blobs" or self.centers == DEFAULT_CENTERS)
        )

    def to_dict(self) -> dict:
        """The controls as the page shows them (and the URL keeps them)."""
        r = self.run
        return {
            "data": self.data, "noise": self.noise, "n": self.n, "centers": self.centers,
            "test_fraction": self.test_fraction, "seed": r.seed, "target": self.target,
            "activation": r.activation, "hidden": r.hidden, "head": r.head or "auto",
            "bias": r.bias, "optimizer": r.optimizer, "lr": r.lr, "schedule": r.schedule,
            "batch_size": "full" if r.batch_size is None else r.batch_size,
            "weight_decay": r.weight_decay, "epochs": r.epochs, "grad": r.grad,
        }  # fmt: skip


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else value


def _number(doc: dict, key: str, label: str, *, integer: bool = False, default=None):
    """doc[key] as an int or float; '' or missing gives ``default``."""
    value = _text(doc.get(key, ""))
    if value in ("", None):
        return default
    if isinstance(value, bool):
        raise SettingsError(f"{label}: expected a number, got {value!r}")
    if isinstance(value, numbers.Real):
        number = value
    else:
        try:
            number = float(value) if not integer else int(value, 10)
        except (TypeError, ValueError):
            want = "a whole number" if integer else "a number"
            raise SettingsError(f"{label}: expected {want}, got {str(value)[:40]!r}") from None
    if integer:
        if isinstance(number, float) and not number.is_integer():
            raise SettingsError(f"{label}: expected a whole number, got {value!r}")
        return int(number)
    if not math.isfinite(number):
        raise SettingsError(f"{label}: expected a finite number, got {value!r}")
    return float(number)


def _choice(doc: dict, key: str, label: str, choices, default):
    value = _text(doc.get(key, ""))
    if value in ("", None):
        return default
    if value not in choices:
        raise SettingsError(f"{label}: {str(value)[:40]!r} is not one of {', '.join(choices)}")
    return value


def _flag(doc: dict, key: str, label: str, default: bool) -> bool:
    value = _text(doc.get(key, ""))
    if value in ("", None):
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "on", "yes"):
        return True
    if str(value).lower() in ("0", "false", "off", "no"):
        return False
    raise SettingsError(f"{label}: expected on or off, got {str(value)[:40]!r}")


def _in_range(value, label: str, low, high):
    if value is not None and not low <= value <= high:
        raise SettingsError(f"{label} must be between {low} and {high}, got {value}")
    return value


def parse(doc: dict) -> Settings:
    """Check the page's controls (a dict of text or numbers) and return :class:`Settings`.

    Raises :class:`SettingsError` (a ``ValueError``) with one line naming the control.
    """
    if not isinstance(doc, dict):
        raise SettingsError("settings must be a JSON object")
    base = Settings()
    r = base.run
    data = _choice(doc, "data", "data set", DATA_CHOICES, base.data)
    noise = _number(doc, "noise", "noise")
    if noise is not None and not noise >= 0:
        raise SettingsError(f"noise must be >= 0, got {noise}")
    n = _in_range(_number(doc, "n", "samples n", integer=True), "samples n", 20, MAX_SAMPLES)
    centers = _in_range(
        _number(doc, "centers", "classes (blobs)", integer=True, default=DEFAULT_CENTERS),
        "classes (blobs)", 2, MAX_CENTERS,
    )  # fmt: skip
    test_fraction = _in_range(
        _number(doc, "test_fraction", "test fraction", default=DEFAULT_TEST_FRACTION),
        "test fraction", 0.05, 0.9,
    )  # fmt: skip
    target = _text(doc.get("target")) or None
    if target is not None and not isinstance(target, str):
        raise SettingsError(f"target column: expected a column name, got {target!r}")
    hidden = _in_range(
        _number(doc, "hidden", "width M", integer=True, default=r.hidden), "width M", 1, MAX_HIDDEN
    )
    head = _choice(doc, "head", "head", ("auto", *names.HEADS), "auto")
    batch = _text(doc.get("batch_size", ""))
    if batch == "full":
        batch_size = None
    else:
        batch_size = _number(doc, "batch_size", "batch size", integer=True, default=r.batch_size)
    try:
        run = RunConfig(
            data=data,
            activation=_choice(doc, "activation", "σ", names.ACTIVATIONS, r.activation),
            hidden=hidden,
            head=None if head == "auto" else head,
            bias=_flag(doc, "bias", "bias", r.bias),
            optimizer=_choice(doc, "optimizer", "optimizer", names.OPTIMIZERS, r.optimizer),
            lr=_number(doc, "lr", "learning rate", default=r.lr),
            schedule=_choice(doc, "schedule", "schedule", names.SCHEDULES, r.schedule),
            epochs=_number(doc, "epochs", "schedule epochs", integer=True, default=r.epochs),
            batch_size=batch_size,
            grad=_choice(doc, "grad", "gradient route", names.GRADIENT_METHODS, r.grad),
            weight_decay=_number(doc, "weight_decay", "weight decay", default=r.weight_decay),
            seed=_number(doc, "seed", "seed", integer=True, default=r.seed),
        )
    except ConfigError as err:  # the library's checks: name the control as the page does
        raise SettingsError(_labelled(str(err))) from None
    return Settings(
        data=data, noise=noise, n=n, centers=centers, test_fraction=test_fraction,
        target=target if data == UPLOAD else None, run=run,
    )  # fmt: skip


_LABELS = {
    "lr": "learning rate", "batch_size": "batch size", "weight_decay": "weight decay",
    "epochs": "schedule epochs", "hidden": "width M", "seed": "seed",
}  # fmt: skip


def _labelled(message: str) -> str:
    """RunConfig's message with the page's name for the field in front."""
    field = message.split(" ", 1)[0]
    return f"{_LABELS[field]}: {message}" if field in _LABELS else message


def speed(value) -> str:
    """One of :data:`SPEEDS` (work per frame)."""
    if value not in SPEEDS:
        raise SettingsError(f"speed: {str(value)[:40]!r} is not one of {', '.join(SPEEDS)}")
    return value
