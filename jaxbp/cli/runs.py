"""Run folders: what ``jaxbp train`` writes and ``evaluate`` / ``predict`` / ``--resume`` read.

A run folder holds ``config.json`` (the :class:`~jaxbp.cli.config.RunConfig`: the
schema, settings, run id and data fingerprint), ``checkpoint.npz`` (see
``jaxbp.checkpoint``; its JSON holds the same config), ``history.csv`` and
``history.json``, PNG plots and ``manifest.json``. Every file is written by the run's
one writer (:class:`jaxbp.runs.RunFolder`: temp file, fsync, rename, listed in the
manifest) under the run's writer lock (:func:`jaxbp.runs.writer_lock`). What is read
back is cross-checked: the checkpoint's run id, config, network, shapes and history
must agree with ``config.json``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from jaxbp import checkpoint
from jaxbp.cli import interrupt
from jaxbp.cli.config import CHANGEABLE_ON_RESUME, ConfigError, RunConfig
from jaxbp.evaluation import predict, predict_classes
from jaxbp.model import Net
from jaxbp.runs import RunFolder, files
from jaxbp.runs.folder import make, prepare
from jaxbp.train import FitResult

CONFIG = "config.json"
CHECKPOINT = "checkpoint.npz"
SWEEP = "sweep.json"
SAVE_EVERY_SECONDS = 10.0


class RunError(ValueError):
    """A run folder that is missing, foreign or inconsistent: one line naming the file."""


def default_folder(cfg: RunConfig) -> Path:
    return Path("runs") / f"{Path(cfg.data).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_folder(out: Path) -> bool:
    """Make ``out`` for a new run (True if it did not exist); a file there is refused."""
    return make(out, flag="--out")


def prepare_folder(out: Path, *, overwrite: bool) -> None:
    """Under the writer lock: an empty folder, or a run replaced with ``overwrite``."""
    prepare(out, overwrite=overwrite, flag="--out")


def read_config(run: Path) -> RunConfig:
    """The ``config.json`` of a run folder, checked field by field (read by the one reader)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    path = run / CONFIG
    try:
        raw = files.read_bytes(path, what="config")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: is {run} a jaxbp run folder?") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    return RunConfig.from_json(text, str(path))


def check_data_unchanged(cfg: RunConfig, where: str) -> None:
    """Refuse a run whose training file changed since (its fingerprint differs)."""
    if not (cfg.fingerprint or "").startswith("sha256:"):
        return
    from jaxbp.runs import fingerprint

    now = fingerprint(cfg.data, seed=cfg.seed)
    if now != cfg.fingerprint:
        raise RunError(
            f"the training file {cfg.data} changed since the run was trained (sha256 "
            f"{cfg.fingerprint[7:19]}… then, {now[7:19]}… now), so {where} would not be the "
            "run's; evaluate any file explicitly with --data FILE"
        )


def load_checkpoint(run: Path, cfg: RunConfig, opt_state_like=None) -> checkpoint.Checkpoint:
    """The run's checkpoint, refused unless it agrees with ``config.json``."""
    path = Path(run) / CHECKPOINT
    if not path.exists():
        if (Path(run) / SWEEP).exists():
            raise RunError(
                f"{run} is a --seeds sweep: its per-seed results are in {SWEEP} and its "
                f"parameters in {path.name} only for sweeps made by this version"
            )
        raise FileNotFoundError(
            f"{path} is missing: the run saved no checkpoint yet (interrupted before its first "
            "epoch ended?)"
        )
    ckpt = checkpoint.load(path)  # first the run id, network and shapes against config.json
    check_run_id(path, cfg, ckpt.config)
    want = cfg.net()
    if ckpt.net != want:
        raise RunError(
            f"{path} holds a network {_net_text(ckpt.net)}, but {CONFIG} says {_net_text(want)}"
        )
    shapes = {"V": (cfg.hidden, cfg.d), "W": (cfg.out, cfg.hidden)}
    for field, shape in shapes.items():
        got = tuple(getattr(ckpt.params, field).shape[-2:])
        if got != shape:
            raise RunError(f"{path}: params.{field} has shape {got}, {CONFIG} implies {shape}")
    if (ckpt.params.b is not None) != cfg.bias:
        has = "has" if ckpt.params.b is not None else "lacks"
        raise RunError(f"{path} {has} offsets b, c, but {CONFIG} says bias={cfg.bias}")
    if np.dtype(ckpt.params.V.dtype) != np.dtype(cfg.dtype):
        raise RunError(f"{path}: params are {ckpt.params.V.dtype}, {CONFIG} says x64={cfg.x64}")
    check_same_config(path, cfg, ckpt.config)  # then every other field (seed, lr, data, …)
    if opt_state_like is not None:  # then the optimizer state against the config's optimizer
        ckpt = checkpoint.load(path, opt_state_like=opt_state_like)
    return ckpt


def check_run_id(path: Path, cfg: RunConfig, stored: dict) -> None:
    """The checkpoint's run id must be ``config.json``'s (the error names both)."""
    theirs = stored.get("run_id")
    if (theirs is not None or cfg.run_id is not None) and theirs != cfg.run_id:
        raise RunError(
            f"{path} belongs to run {theirs}, but {CONFIG} is run {cfg.run_id}: the "
            "checkpoint was copied in from another run"
        )


def check_same_config(path: Path, cfg: RunConfig, stored: dict) -> None:
    """The checkpoint's stored config must be ``config.json``'s; the error names the fields."""
    if not stored:
        raise RunError(f"{path} stores no run config: it was not written by jaxbp train")
    mine = json.loads(cfg.to_json())
    try:  # both sides with every field spelled out (a Python writer may leave defaults out)
        stored = json.loads(RunConfig.from_json(json.dumps(stored), str(path)).to_json())
    except (ConfigError, TypeError, ValueError):
        pass  # compared as stored: its fields will differ
    differ = sorted(
        k for k in set(mine) | set(stored)
        if k not in CHANGEABLE_ON_RESUME and mine.get(k) != stored.get(k)
    )  # fmt: skip
    if differ:
        shown = ", ".join(
            f"{k} ({_short(stored.get(k))} vs {_short(mine.get(k))})" for k in differ[:6]
        )
        raise RunError(
            f"{path} was saved with another configuration than {CONFIG}: {shown} "
            "(checkpoint vs config.json)"
        )


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _net_text(net: Net) -> str:
    return f"(activation={net.activation}, head={net.head}, output={net.output}, " \
           f"matmul_dtype={net.matmul_dtype})"  # fmt: skip


class Saver:
    """The ``fit`` callback: keep the latest epoch, commit it every few seconds.

    A commit writes the checkpoint, then (the first time) ``config.json``, then
    ``history.json``/``history.csv`` of the same epoch, each atomically through the
    run's writer, so a run folder holds a resumable run (or nothing: if the first
    commit fails, :meth:`jaxbp.runs.RunFolder.abandon` removes what it wrote). After
    an interrupt (``jaxbp.cli.interrupt``) it commits at once and returns True, which
    makes ``fit`` stop after the current epoch. With ``log_every`` it prints a plain
    progress line every that many epochs (for logs, where a bar would not render).
    """

    def __init__(
        self, run: RunFolder, cfg: RunConfig, key, *, log_every: int | None = None,
        committed: bool = False,
    ):  # fmt: skip
        self.run, self.cfg, self.key, self.log_every = run, cfg, key, log_every
        self.out = run.folder
        self.saved_epoch, self.saved_at, self.committed = None, time.monotonic(), committed
        self.config_written = False
        self.latest: FitResult | None = None

    def __call__(self, epoch: int, result: FitResult) -> bool:
        self.latest = result
        if self.log_every and (epoch % self.log_every == 0 or epoch == self.cfg.epochs):
            print(progress_line(epoch, self.cfg.epochs, result.history), file=sys.stderr)
        stop = interrupt.requested()
        if stop or time.monotonic() - self.saved_at > SAVE_EVERY_SECONDS:
            self.save(result)
        return stop

    def save(self, result: FitResult) -> None:
        with interrupt.committing():  # a signal meanwhile waits for the commit to end
            self._commit(result)

    def _commit(self, result: FitResult) -> None:
        try:
            checkpoint.save(
                self.run.path(CHECKPOINT), net=self.cfg.net(), params=result.params,
                opt_state=result.opt_state, epoch=result.epoch, key=self.key,
                history=result.history, config=json.loads(self.cfg.to_json()), folder=self.run,
            )  # fmt: skip
            if not self.config_written:
                self.run.write(CONFIG, self.cfg.to_json())
                self.config_written = True
            write_history(self.run, result.history)
        except BaseException:
            if not self.committed:  # the first commit failed: leave no half run behind
                self.run.abandon()
            raise
        self.committed = True
        self.saved_epoch, self.saved_at = result.epoch, time.monotonic()


def write_history(run: RunFolder, history: dict) -> None:
    run.write("history.json", json.dumps(history, indent=1))
    run.write("history.csv", history_csv(history))


def progress_line(epoch: int, total: int, history: dict) -> str:
    """``epoch 10/40  loss 0.1234  val_loss 0.2345  val_accuracy 97.22%``: one log line."""
    parts = [f"epoch {epoch}/{total}", f"loss {history['loss'][-1]:.4g}"]
    for name in ("val_loss", "val_accuracy"):
        value = history.get(name, [None])[-1]
        if value is not None:
            parts.append(
                f"{name} {100 * value:.2f}%" if "accuracy" in name else f"{name} {value:.4g}"
            )
    return "  ".join(parts)


def history_csv(history: dict) -> str:
    columns = [k for k, v in history.items() if len(v) == len(history["epoch"])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*(history[k] for k in columns), strict=True):
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


def write_outputs(run: RunFolder, cfg: RunConfig, ds, net: Net, result: FitResult) -> list[Path]:
    """history.csv/json and the plots, through the run's writer; returns the files written."""
    from jaxbp.cli import confusion, plots  # matplotlib: only when a run writes its plots

    out = run.folder
    history = result.history
    write_history(run, history)
    files = [out / "history.json", out / "history.csv"]
    if not history["epoch"]:
        return files
    names = ["loss.png"]
    if net.is_classifier:
        names += ["accuracy.png", "confusion_matrix.png"] + (
            ["decision_regions.png"] if ds.d == 2 else []
        )
    elif ds.d == 1:
        names.append("fit.png")
    run.register(*names)  # listed before written: --overwrite removes them later
    files.append(plots.plot_loss(history, out / "loss.png"))
    if net.is_classifier:
        files.append(plots.plot_accuracy(history, out / "accuracy.png"))

        def classes(X):
            return np.asarray(predict_classes(net, result.params, X))

        files.append(
            confusion.plot_confusion_matrix(
                ds.y_test, classes(ds.X_test), out / "confusion_matrix.png",
                n_classes=ds.n_classes,
                labels=None if ds.classes is None else [str(c) for c in ds.classes],
            )
        )  # fmt: skip
        if ds.d == 2:
            files.append(
                plots.plot_decision_regions(
                    classes, ds.X_train, ds.y_train, out / "decision_regions.png",
                    n_classes=ds.n_classes, title=f"{ds.name}: decision regions",
                )
            )  # fmt: skip
    elif ds.d == 1:
        from jaxbp.data import unstandardise

        scaler = ds.scaler
        target = None if ds.target is None else (lambda X: ds.target(unstandardise(X, scaler)))
        files.append(
            plots.plot_regression_fit(
                lambda X: np.asarray(predict(net, result.params, X)), ds.X_train, ds.y_train,
                out / "fit.png", target=target, title=f"{ds.name}: the network's fit",
            )
        )  # fmt: skip
    return files
