"""One browser tab's training: :class:`Session`, and :class:`Sessions`, the capped registry.

A session holds the settings, the data, θ and the optimizer state, and trains with
the compiled epoch that ``jaxbp.fit`` runs (``jaxbp.epoch.compile_epoch``, the
hand-written BP for ``grad="matrix"``). One optimizer step is the same compiled
function over a single minibatch (n = batch size). A step or epoch whose result is
not finite is not committed: the session stops with "diverged at epoch k" and keeps
the last finite θ. Every command runs on the caller's thread; the server runs them
one at a time per session, off the event loop.
"""

from __future__ import annotations

import json
import math
import secrets
import struct
import threading
import time

import jax
import numpy as np

from jaxbp import names
from jaxbp.data import DataError
from jaxbp.epoch import compile_epoch, shuffle_order
from jaxbp.playground import datasets, frames
from jaxbp.playground.settings import PLANE_DATA, Settings, SettingsError, speed
from jaxbp.train import FitResult, new_history
from jaxbp.validate import checked_data

MAX_SESSIONS = 8
MAX_CURVE_POINTS = 4000


class Refused(ValueError):
    """A command the session cannot do now (e.g. train after divergence); one line."""


class Session:
    """The state of one tab: settings, data, θ, optimizer state, history."""

    def __init__(self, sid: str, settings: Settings | None = None, upload=None):
        self.id = sid
        self.upload: datasets.Upload | None = upload
        self.speed = "1 epoch"
        self.timing = {"step": 0.0, "views": 0.0, "encode": 0.0}
        self.seq = 0  # frames made so far; the page acknowledges them by number
        self.apply(settings or Settings())

    # -- configuration ------------------------------------------------------------------
    def apply(self, settings: Settings) -> None:
        """Use new settings: new data, net and θ. On any error the session is unchanged."""
        try:
            ds, source = datasets.load(settings, self.upload)
            cfg = settings.run.with_data(ds)  # the head checked against the data
        except (DataError, SettingsError):
            raise
        except ValueError as err:  # the library's checks, e.g. a logistic head for 3 classes
            raise SettingsError(" ".join(str(err).split())) from None
        net = cfg.net()
        init_key, fit_key = cfg.keys()
        params = cfg.init_params(net, init_key)
        head = net.loss_head
        X, Y = checked_data(net, params, ds.X_train, head.targets(ds.y_train))
        Xt, Yt = checked_data(net, params, ds.X_test, head.targets(ds.y_test))
        n = X.shape[0]
        self.settings, self.ds, self.source, self.cfg, self.net = settings, ds, source, cfg, net
        self.data = (X, Y, Xt, Yt)
        self.yt_ids = jax.numpy.asarray(ds.y_test if head.classifier else np.zeros(len(Xt), int))
        self.batch = min(cfg.batch_size or n, n)
        self.optimizer = cfg.make_optimizer(n, validation=False)
        self.epoch_fn = compile_epoch(
            net, self.optimizer, n=n, batch_size=self.batch, grad=cfg.grad
        )
        self.shuffle_key = jax.random.split(fit_key)[1]  # as fit: (split key, shuffle key)
        self.fit_key, self.init_key = fit_key, init_key
        self.grids = frames.grids_for(np.concatenate([ds.X_train, ds.X_test]))
        self.reset()

    def reset(self) -> None:
        """θ back to its initial value (same seed), history and curves emptied."""
        self.params = self.cfg.init_params(self.net, self.init_key)
        self.opt_state = self.optimizer.init(self.params)
        self.epoch, self.pos, self.steps = 0, 0, 0
        self.sums = [0.0, 0.0]  # Σ loss, Σ correct over the current epoch's steps so far
        self.order = None
        self.history = new_history(self.net.is_classifier)
        self.curves: list[list] = []
        self.sent_curves = 0
        self.diverged: int | None = None
        self.playing = False
        self.generation = getattr(self, "generation", 0) + 1

    def set_speed(self, value) -> None:
        self.speed = speed(value)

    # -- training -----------------------------------------------------------------------
    def _check_can_train(self) -> None:
        if self.diverged is not None:
            raise Refused(
                f"diverged at epoch {self.diverged}: the last finite θ is kept; lower the "
                "learning rate or press reset"
            )

    def _order(self) -> np.ndarray:
        if self.order is None:
            self.order = shuffle_order(self.shuffle_key, self.epoch, self.data[0].shape[0])
        return self.order

    def step(self) -> None:
        """One optimizer step on the next minibatch of the current epoch's order."""
        self._check_can_train()
        X, Y = self.data[:2]
        n = X.shape[0]
        rows = self._order()[self.pos : self.pos + self.batch]
        fn = compile_epoch(self.net, self.optimizer, n=len(rows), batch_size=len(rows),
                           grad=self.cfg.grad)  # fmt: skip
        t0 = time.perf_counter()
        params, opt_state, stats = fn(self.params, self.opt_state, X[rows], Y[rows], rows,
                                      None, None)  # fmt: skip
        stats = jax.device_get(stats)
        if not stats["ok"]:
            self._diverge()
            return
        self.params, self.opt_state = params, opt_state
        self.pos += len(rows)
        self.steps += 1
        self.sums[0] += float(stats["loss"]) * len(rows)
        self.sums[1] += float(stats["accuracy"]) * len(rows)
        if self.pos >= n:
            self._end_epoch(self.sums[0] / n, self.sums[1] / n, time.perf_counter() - t0)

    def run_epoch(self) -> None:
        """Finish the current epoch: the compiled epoch when at its start, else its steps."""
        self._check_can_train()
        if self.pos:
            epoch = self.epoch
            while self.epoch == epoch and self.diverged is None:
                self.step()
            return
        X, Y = self.data[:2]
        t0 = time.perf_counter()
        params, opt_state, stats = self.epoch_fn(self.params, self.opt_state, X, Y,
                                                 self._order(), None, None)  # fmt: skip
        stats = jax.device_get(stats)
        if not stats["ok"]:
            self._diverge()
            return
        self.params, self.opt_state = params, opt_state
        self.steps += math.ceil(X.shape[0] / self.batch)
        self._end_epoch(float(stats["loss"]), float(stats["accuracy"]), time.perf_counter() - t0)

    def _end_epoch(self, loss: float, accuracy: float, seconds: float) -> None:
        self.epoch += 1
        self.pos, self.sums, self.order = 0, [0.0, 0.0], None
        row = {"epoch": self.epoch, "loss": loss, "val_loss": None, "seconds": seconds}
        if self.net.is_classifier:
            row |= {"accuracy": accuracy, "val_accuracy": None}
        for name in self.history:
            self.history[name].append(row[name])

    def _diverge(self) -> None:
        self.diverged = self.epoch + 1
        self.playing = False

    def advance(self) -> None:
        """The work of one frame at the current speed."""
        count, unit = self.speed.split()
        for _ in range(int(count)):
            if self.diverged is not None:
                return
            self.step() if unit.startswith("step") else self.run_epoch()

    # -- frames -------------------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Epochs done, with the current epoch's fraction."""
        return self.epoch + self.pos / self.data[0].shape[0]

    def views(self) -> dict:
        X, Y, Xt, Yt = self.data
        g = self.grids
        return frames.host(
            frames.views(self.net, self.params, X, Y, Xt, Yt, self.yt_ids, g.points, g.features)
        )

    def frame(self, train: bool) -> bytes:
        """Train one frame's worth (when ``train``), compute every view, encode them."""
        t0 = time.perf_counter()
        if train:
            self.advance()
            jax.block_until_ready(self.params)
        t1 = time.perf_counter()
        v = self.views()
        t2 = time.perf_counter()
        self._record(v)
        self.seq += 1
        message = encode_frame(self._frame_header(v), self._frame_arrays(v))
        t3 = time.perf_counter()
        self.timing = {"step": t1 - t0, "views": t2 - t1, "encode": t3 - t2}
        return message

    def _record(self, v: dict) -> None:
        point = [round(self.progress, 4), float(v["train_loss"]), float(v["test_loss"])]
        if self.net.is_classifier:
            point += [float(v["train_accuracy"]), float(v["test_accuracy"])]
        if not self.curves or self.curves[-1][0] != point[0]:
            self.curves.append(point)
        if len(self.curves) > MAX_CURVE_POINTS:  # keep every other point of the older half
            half = len(self.curves) // 2
            self.curves = self.curves[:half:2] + self.curves[half:]
            self.sent_curves = 0

    def _frame_header(self, v: dict) -> dict:
        fresh = self.curves[self.sent_curves :]
        header = {
            "type": "frame", "seq": self.seq, "generation": self.generation, "epoch": self.epoch,
            "progress": self.progress, "steps": self.steps, "playing": self.playing,
            "diverged": self.diverged, "train_loss": float(v["train_loss"]),
            "test_loss": float(v["test_loss"]), "gradcheck": float(v["gradcheck"]),
            "curves": fresh, "curves_reset": self.sent_curves == 0, "timing": self.timing,
        }  # fmt: skip
        self.sent_curves = len(self.curves)
        if self.net.is_classifier:
            header["train_accuracy"] = float(v["train_accuracy"])
            header["test_accuracy"] = float(v["test_accuracy"])
        else:
            header["train_mse"], header["test_mse"] = float(v["train_mse"]), float(v["test_mse"])
        if "maps_lo" in v:
            header["maps_lo"], header["maps_hi"] = v["maps_lo"].tolist(), v["maps_hi"].tolist()
        return header

    def _frame_arrays(self, v: dict) -> dict:
        p = self.params
        arrays = {"V": p.V, "W": p.W, "norms": v["norms"]}
        if p.b is not None:
            arrays |= {"b": p.b, "c": p.c}
        for name in ("regions", "fit", "maps", "confusion"):
            if name in v:
                arrays[name] = v[name]
        return arrays

    # -- what the page needs once per configuration --------------------------------------
    def describe(self) -> dict:
        """The data, grids and network shape: sent after every (re)configuration."""
        ds, cfg, g = self.ds, self.cfg, self.grids
        return {
            "type": "setup", "generation": self.generation, "settings": self.settings.to_dict(),
            "speed": self.speed, "name": ds.name, "task": ds.task, "d": ds.d, "K": cfg.out,
            "M": cfg.hidden, "head": cfg.head, "classes": _labels(ds), "bias": cfg.bias,
            "activation": cfg.activation, "n_train": len(ds.X_train), "n_test": len(ds.X_test),
            "plane": ds.d <= 2, "lo": g.lo.tolist(), "hi": g.hi.tolist(),
            "grid": frames.GRID, "feature_grid": frames.FEATURE_GRID, "line": frames.LINE,
            "maps": min(cfg.hidden, frames.MAX_MAPS), "gradcheck_red": frames.GRADCHECK_RED,
            "X_train": _points(ds.X_train), "y_train": _targets(ds.y_train),
            "X_test": _points(ds.X_test), "y_test": _targets(ds.y_test),
            "upload": None if self.upload is None else {
                "name": self.upload.name, "columns": list(self.upload.columns)},
            "builtin": self.settings.data in PLANE_DATA,
            "choices": {"activation": names.ACTIVATIONS, "optimizer": names.OPTIMIZERS,
                        "schedule": names.SCHEDULES},
        }  # fmt: skip

    # -- a clicked point, a hover -------------------------------------------------------
    def equations_at(self, x, index: int | None = None, split: str = "train") -> dict:
        """The BP equations at point ``x`` (or the data point ``index`` of ``split``)."""
        ds = self.ds
        X, y = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)
        if index is not None:
            if not (isinstance(index, int) and 0 <= index < len(X)):
                raise Refused(f"no {split} point number {index!r}")
            x, label, source = X[index], y[index], f"{split} point {index}"
        else:
            x = _point(x, ds.d)
            nearest = int(np.argmin(((ds.X_train - x) ** 2).sum(1)))
            label, source = ds.y_train[nearest], f"label of the nearest train point ({nearest})"
        y_row = self.net.loss_head.targets(np.asarray([label]))[0]
        out = frames.point_equations(self.net, self.params, x, np.asarray(y_row))
        out |= {"type": "equations", "source": source, "epoch": self.epoch,
                "label": _targets(np.asarray([label]))[0]}  # fmt: skip
        if self.net.is_classifier:
            out["class"] = _labels(ds)[int(label)]
        return out

    def probe(self, x) -> dict:
        return {"type": "probe", "x": _point(x, self.ds.d).tolist()} | frames.probe(
            self.net, self.params, _point(x, self.ds.d)
        )

    # -- export ---------------------------------------------------------------------------
    def fit_result(self) -> FitResult:
        """θ, state and history as ``jaxbp.fit`` returns them (epoch = completed epochs)."""
        status = "diverged" if self.diverged is not None else "stopped"
        history = {k: list(v) for k, v in self.history.items()}
        if self.diverged is not None:
            history["diverged_epoch"] = [self.diverged]
        return FitResult(self.params, self.opt_state, history, status, self.epoch)


def _point(x, d: int) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise Refused(f"a point must be {d} numbers, got {str(x)[:40]}") from None
    if a.shape != (d,) or not np.isfinite(a).all():
        raise Refused(f"a point must be {d} finite numbers, got {str(x)[:40]}")
    return a.astype(np.float32)


def _points(X: np.ndarray) -> list:
    return np.round(np.asarray(X, np.float64), 5).tolist() if X.shape[1] <= 2 else []


def _targets(y: np.ndarray) -> list:
    y = np.asarray(y)
    return y.tolist() if y.dtype.kind in "iu" else np.round(y.astype(np.float64), 5).tolist()


def _labels(ds) -> list[str] | None:
    return None if ds.classes is None else [str(c) for c in np.asarray(ds.classes).tolist()]


def encode_frame(header: dict, arrays: dict) -> bytes:
    """One binary WebSocket message: 4-byte length, JSON header, then aligned raw arrays.

    The header gains ``arrays``: name → [dtype, shape, byte offset]; every offset is a
    multiple of 8 so the page can view each as a typed array without copying.
    """
    layout, chunks, offset = {}, [], 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        if a.dtype == np.int64:
            a = a.astype(np.int32)
        layout[name] = [a.dtype.name, list(a.shape), offset]
        raw = a.tobytes()
        chunks.append(raw + b"\0" * (-len(raw) % 8))
        offset += len(chunks[-1])
    text = json.dumps(header | {"arrays": layout}, allow_nan=False).encode()
    text += b" " * (-(len(text) + 4) % 8)
    return struct.pack("<I", len(text)) + text + b"".join(chunks)


class Sessions:
    """The live sessions, at most ``limit``; a session ends when its tab's socket closes."""

    def __init__(self, limit: int = MAX_SESSIONS):
        self.limit = limit
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, settings: Settings | None = None, upload=None) -> Session:
        """A new session, or Refused when ``limit`` are open."""
        with self._lock:
            if len(self._sessions) >= self.limit:
                raise Refused(
                    f"the playground already serves {self.limit} tabs (the limit); close one "
                    "and reload this page"
                )
            sid = secrets.token_hex(8)
            self._sessions[sid] = None  # reserved while the session is built
        try:
            session = Session(sid, settings, upload)
        except BaseException:
            self.close(sid)
            raise
        self._sessions[sid] = session
        return session

    def close(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)
