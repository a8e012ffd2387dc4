"""Run folders: what ``jaxbp train`` writes and ``evaluate`` / ``predict`` / ``--resume`` read.

A run folder holds ``config.json`` (the :class:`~jaxbp.cli.config.RunConfig`),
``checkpoint.npz`` (see ``jaxbp.checkpoint``), ``history.csv`` and ``history.json``,
and PNG plots. Every file is written atomically (temp file, fsync, rename), so a
crash leaves the old file or the new one, never a mixture. What is read back is
cross-checked: the checkpoint's network, shapes and history must agree with
``config.json``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from jaxbp import atomic, checkpoint
from jaxbp.cli import interrupt
from jaxbp.cli.config import ConfigError, RunConfig
from jaxbp.evaluation import predict, predict_classes
from jaxbp.model import Net
from jaxbp.train import FitResult

CONFIG = "config.json"
CHECKPOINT = "checkpoint.npz"
SWEEP = "sweep.json"
SAVE_EVERY_SECONDS = 10.0


class RunError(ValueError):
    """A run folder that is missing, foreign or inconsistent: one line naming the file."""


def default_folder(cfg: RunConfig) -> Path:
    return Path("runs") / f"{Path(cfg.data).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_folder(out: Path, *, overwrite: bool) -> None:
    """Make ``out`` for a new run; an existing non-empty folder is refused unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is an existing file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            what = "a jaxbp run" if (out / CONFIG).exists() else "a non-empty folder"
            raise RunError(
                f"--out {out} is {what}; continue it with --resume {out}, choose another "
                "--out, or pass --overwrite to replace its run files"
            )
        for name in (CONFIG, CHECKPOINT, SWEEP, "history.csv", "history.json"):
            (out / name).unlink(missing_ok=True)
        for png in out.glob("*.png"):
            png.unlink()
    out.mkdir(parents=True, exist_ok=True)


def read_config(run: Path) -> RunConfig:
    """The ``config.json`` of a run folder, checked field by field."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    path = run / CONFIG
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: is {run} a jaxbp run folder?") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    return RunConfig.from_json(text, str(path))


def write_config(out: Path, cfg: RunConfig) -> None:
    atomic.write_text(out / CONFIG, cfg.to_json())


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
    ckpt = checkpoint.load(path)  # first the network and shapes against config.json
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
    if opt_state_like is not None:  # then the optimizer state against the config's optimizer
        ckpt = checkpoint.load(path, opt_state_like=opt_state_like)
    return ckpt


def _net_text(net: Net) -> str:
    return f"(activation={net.activation}, head={net.head}, output={net.output}, " \
           f"matmul_dtype={net.matmul_dtype})"  # fmt: skip


def save_checkpoint(out: Path, cfg: RunConfig, result: FitResult, key) -> None:
    checkpoint.save(
        out / CHECKPOINT, net=cfg.net(), params=result.params, opt_state=result.opt_state,
        epoch=result.epoch, key=key, history=result.history, config=json.loads(cfg.to_json()),
    )  # fmt: skip


class Saver:
    """The ``fit`` callback: keep the latest epoch, checkpoint it every few seconds.

    ``config.json`` is written with the first checkpoint, so a run folder holds a
    resumable run or nothing. After a Ctrl-C (``jaxbp.cli.interrupt``) it saves at
    once and returns True, which makes ``fit`` stop after the current epoch. With
    ``log_every`` it prints a plain progress line every that many epochs (for logs,
    where a progress bar would not render).
    """

    def __init__(self, out: Path, cfg: RunConfig, key, *, log_every: int | None = None):
        self.out, self.cfg, self.key, self.log_every = out, cfg, key, log_every
        self.saved_epoch, self.saved_at, self.config_written = None, time.monotonic(), False
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
        if not self.config_written:
            write_config(self.out, self.cfg)
            self.config_written = True
        save_checkpoint(self.out, self.cfg, result, self.key)
        self.saved_epoch, self.saved_at = result.epoch, time.monotonic()


def progress_line(epoch: int, total: int, history: dict) -> str:
    """``epoch 10/40  loss 0.1234  val_loss 0.2345  val_accuracy 97.22%``: one log line."""
    parts = [f"epoch {epoch}/{total}", f"loss {history['loss'][-1]:.4f}"]
    for name in ("val_loss", "val_accuracy"):
        value = history.get(name, [None])[-1]
        if value is not None:
            parts.append(
                f"{name} {100 * value:.2f}%" if "accuracy" in name else f"{name} {value:.4f}"
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


def write_outputs(out: Path, cfg: RunConfig, ds, net: Net, result: FitResult) -> list[Path]:
    """history.csv/json and the plots; returns the files written."""
    from jaxbp.cli import confusion, plots  # matplotlib: only when a run writes its plots

    history = result.history
    files = [out / "history.json", out / "history.csv"]
    atomic.write_text(files[0], json.dumps(history, indent=1))
    atomic.write_text(files[1], history_csv(history))
    if not history["epoch"]:
        return files
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
        mean, std = ds.scaler if ds.scaler is not None else (0.0, 1.0)
        target = None if ds.target is None else (lambda X: ds.target(X * std + mean))
        files.append(
            plots.plot_regression_fit(
                lambda X: np.asarray(predict(net, result.params, X)), ds.X_train, ds.y_train,
                out / "fit.png", target=target, title=f"{ds.name}: the network's fit",
            )
        )  # fmt: skip
    return files
