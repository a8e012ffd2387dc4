"""Run folders: what ``jaxbp train`` writes and ``evaluate`` / ``predict`` / ``--resume`` read.

A run folder holds ``config.json`` (the arguments and what was derived from the
data: sizes, classes, the input scaler), ``checkpoint.npz`` (see
``jaxbp.checkpoint``), ``history.csv`` and ``history.json``, and PNG plots.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp import checkpoint, data, optimizers, plots
from jaxbp.many import fit_many, init_many
from jaxbp.model import Net
from jaxbp.params import init
from jaxbp.train import FitResult, evaluate, fit, predict, with_weight_decay

CONFIG = "config.json"
CHECKPOINT = "checkpoint.npz"
DEFAULT_EPOCHS = 40
SAVE_EVERY_SECONDS = 10.0
VALIDATION_FRACTION = 0.1

# Arguments that define a run; --resume takes them from the run's config.json.
_RUN_ARGS = (
    "data", "target", "activation", "hidden", "head", "output", "bias", "optimizer", "lr",
    "schedule", "epochs", "batch_size", "grad", "weight_decay", "early_stopping", "seed", "x64",
    "devices", "bf16",
)  # fmt: skip


def _head_for(ds: data.Dataset, head: str | None) -> str:
    """The head for the data's task (softmax for classes, squared for regression by default)."""
    if ds.task == "classification":
        head = head or "softmax"
        if head == "squared":
            raise ValueError(
                f"--head squared is for regression, but {ds.name!r} has classes; "
                "use --head softmax or logistic"
            )
        if head == "logistic" and ds.n_classes != 2:
            raise ValueError(
                f"--head logistic needs 2 classes, but {ds.name!r} has {ds.n_classes}; "
                "use --head softmax"
            )
        return head
    if head not in (None, "squared"):
        raise ValueError(f"--head {head} is for classes, but {ds.name!r} is a regression problem")
    return "squared"


def labels_for(head: str, y: np.ndarray) -> np.ndarray:
    """Class ids 0/1 become the logistic head's −1/+1; other labels pass through."""
    return 2 * np.asarray(y) - 1 if head == "logistic" else y


def _class_ids(head: str, pred) -> np.ndarray:
    """Predictions as class ids 0..C−1 (the logistic head predicts ±1)."""
    pred = np.asarray(pred)
    return (pred + 1) // 2 if head == "logistic" else pred


def _batch_size(text) -> int | None:
    if text in (None, "full"):
        return None
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"--batch-size must be a positive integer or 'full', got {text!r}"
        ) from None
    if value < 1:
        raise ValueError(f"--batch-size must be a positive integer or 'full', got {value}")
    return value


def read_config(run: Path) -> dict:
    """The ``config.json`` of a run folder, with a clear error when it is missing or broken."""
    path = Path(run) / CONFIG
    if not Path(run).is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: is {run} a jaxbp run folder?") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def _load_data(cfg: dict) -> data.Dataset:
    return data.load(cfg["data"], key=jax.random.key(cfg["seed"]), target=cfg["target"])


def _net(cfg: dict) -> Net:
    return Net(
        activation=cfg["activation"], head=cfg["head"], output=cfg["output"],
        matmul_dtype="bfloat16" if cfg.get("bf16") else None,
    )  # fmt: skip


def _setup(cfg: dict, ds: data.Dataset):
    """(net, optimizer, weight decay, batch size, n_train) from a run config and its data."""
    net = _net(cfg)
    batch_size = _batch_size(cfg["batch_size"])
    n_train = len(ds.X_train) - max(1, round(VALIDATION_FRACTION * len(ds.X_train)))
    steps = math.ceil(n_train / min(batch_size or n_train, n_train))
    lr = optimizers.schedule(
        cfg["schedule"], cfg["lr"], steps_per_epoch=steps, epochs=cfg["epochs"]
    )
    adamw = cfg["optimizer"] == "adamw"
    optimizer = optimizers.make(
        cfg["optimizer"], lr, weight_decay=cfg["weight_decay"] if adamw else 0.0
    )
    return net, optimizer, 0.0 if adamw else cfg["weight_decay"], batch_size


def _run_config(args, ds: data.Dataset) -> dict:
    cfg = {name: getattr(args, name) for name in _RUN_ARGS}
    cfg["epochs"] = cfg["epochs"] or DEFAULT_EPOCHS
    cfg["head"] = _head_for(ds, cfg["head"])
    mean, std = ds.scaler if ds.scaler is not None else (np.zeros(ds.d), np.ones(ds.d))
    cfg |= {
        "d": ds.d,
        "out": 1 if cfg["head"] == "logistic" else ds.n_outputs,
        "task": ds.task,
        "classes": None if ds.classes is None else np.asarray(ds.classes).tolist(),
        "scaler": {"mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()},
    }
    return cfg


def _default_out(cfg: dict) -> Path:
    return Path("runs") / f"{Path(cfg['data']).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_command(args) -> int:
    """``jaxbp train``: train, checkpoint as it goes, then write history, plots and a summary."""
    resume = args.resume is not None
    if resume:
        cfg = read_config(args.resume)
        total = args.epochs or cfg["epochs"]
        cfg["epochs"] = total
        out = Path(args.resume)
    else:
        _batch_size(args.batch_size)  # fail on a bad --batch-size before loading data
        cfg = None
    if cfg is not None and cfg.get("x64"):
        jax.config.update("jax_enable_x64", True)
    ds = _load_data(cfg or vars(args))
    if cfg is None:
        cfg = _run_config(args, ds)
        out = Path(args.out) if args.out else _default_out(cfg)
    net, optimizer, weight_decay, batch_size = _setup(cfg, ds)
    dtype = jnp.float64 if cfg["x64"] else jnp.float32
    if not resume and args.seeds > 1:
        return sweep(
            cfg, ds, net, with_weight_decay(optimizer, weight_decay), batch_size, out, args
        )
    seed_key = jax.random.key(cfg["seed"])
    params = init(
        net, jax.random.fold_in(seed_key, 0), d=cfg["d"], hidden=cfg["hidden"], out=cfg["out"],
        bias=cfg["bias"], dtype=dtype,
    )  # fmt: skip
    y_train = labels_for(cfg["head"], ds.y_train)
    opt_state, start, history = None, 0, None
    if resume:
        ckpt = checkpoint.load(
            out / CHECKPOINT, opt_state_like=_opt_like(optimizer, weight_decay, params)
        )
        params, opt_state, start, history = ckpt.params, ckpt.opt_state, ckpt.epoch, ckpt.history
        if start >= cfg["epochs"]:
            print(f"{out} has already run {start} of {cfg['epochs']} epochs; nothing to do")
            return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps(cfg, indent=2))
    saver = _Saver(out, cfg, fit_key := jax.random.fold_in(seed_key, 1))
    print(f"jaxbp train: {_describe(cfg, ds)} → {out}", file=sys.stderr)
    try:
        result = fit(
            net, params, ds.X_train, y_train, optimizer=optimizer, epochs=cfg["epochs"] - start,
            batch_size=batch_size, key=fit_key, grad=cfg["grad"],
            validation_fraction=VALIDATION_FRACTION, early_stopping=cfg["early_stopping"],
            weight_decay=weight_decay, progress=not args.quiet, opt_state=opt_state,
            initial_epoch=start, history=history, callback=saver, devices=cfg.get("devices"),
        )  # fmt: skip
    except KeyboardInterrupt:
        saver.flush()
        print(
            f"\ninterrupted: epochs up to {saver.epoch} are saved in {out}; "
            f"continue with: jaxbp train --resume {out}",
            file=sys.stderr,
        )
        return 130
    saver.save(net, result)
    files = write_outputs(out, cfg, ds, net, result)
    print(_summary(cfg, ds, net, result, out, files))
    if result.status == "diverged":
        epoch = result.history["diverged_epoch"][-1]
        print(
            f"jaxbp train: training diverged at epoch {epoch} (the loss became NaN or inf); "
            f"the last finite parameters (epoch {result.epoch}) are saved in {out}. "
            f"Try a smaller learning rate, e.g. --lr {cfg['lr'] / 10:g}.",
            file=sys.stderr,
        )
        return 1
    return 0


def _opt_like(optimizer, weight_decay, params):
    return with_weight_decay(optimizer, weight_decay).init(params)


class _Saver:
    """The ``fit`` callback: keep the latest epoch and checkpoint it every few seconds."""

    def __init__(self, out: Path, cfg: dict, key):
        self.out, self.cfg, self.key = out, cfg, key
        self.latest: tuple[Net, FitResult] | None = None
        self.epoch, self.saved_at = 0, time.monotonic()

    def __call__(self, epoch: int, result: FitResult) -> None:
        self.latest, self.epoch = result, epoch
        if time.monotonic() - self.saved_at > SAVE_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.latest is not None:
            self.save(None, self.latest)

    def save(self, net, result: FitResult) -> None:
        net = net or _net(self.cfg)
        checkpoint.save(
            self.out / CHECKPOINT, net=net, params=result.params, opt_state=result.opt_state,
            epoch=result.epoch, key=self.key, history=result.history, config=self.cfg,
        )  # fmt: skip
        self.saved_at = time.monotonic()


def _describe(cfg: dict, ds: data.Dataset) -> str:
    return (
        f"{ds.name} ({len(ds.X_train)} train / {len(ds.X_test)} test, d={ds.d}), "
        f"σ={cfg['activation']}, M={cfg['hidden']}, head={cfg['head']}, "
        f"{cfg['optimizer']} lr={cfg['lr']:g} ({cfg['schedule']}), {cfg['epochs']} epochs, "
        f"batch {cfg['batch_size']}, grad={cfg['grad']}"
    )


def _test_metrics(cfg, ds, net, params) -> dict[str, float]:
    return evaluate(net, params, ds.X_test, labels_for(cfg["head"], ds.y_test))


def write_outputs(
    out: Path, cfg: dict, ds: data.Dataset, net: Net, result: FitResult
) -> list[Path]:
    """history.csv/json and the plots; returns the files written."""
    history = result.history
    files = [out / "history.json"]
    files[0].write_text(json.dumps(history, indent=1))
    files.append(_write_history_csv(out / "history.csv", history))
    if not history["epoch"]:
        return files
    files.append(plots.plot_loss(history, out / "loss.png"))
    if net.is_classifier:
        files.append(plots.plot_accuracy(history, out / "accuracy.png"))
        pred = _class_ids(cfg["head"], predict(net, result.params, ds.X_test))
        files.append(
            plots.plot_confusion_matrix(
                ds.y_test, pred, out / "confusion_matrix.png", n_classes=ds.n_classes,
                labels=None if ds.classes is None else [str(c) for c in ds.classes],
            )
        )  # fmt: skip
        if ds.d == 2:
            files.append(
                plots.plot_decision_regions(
                    lambda X: _class_ids(cfg["head"], predict(net, result.params, X)),
                    ds.X_train, ds.y_train, out / "decision_regions.png",
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


def _write_history_csv(path: Path, history: dict) -> Path:
    columns = [k for k, v in history.items() if len(v) == len(history["epoch"])]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in zip(*(history[k] for k in columns), strict=True):
            writer.writerow(["" if v is None else v for v in row])
    return path


def _summary(cfg, ds, net, result: FitResult, out: Path, files) -> str:
    h = result.history
    test = _test_metrics(cfg, ds, net, result.params)
    rows = [
        ("status", result.status),
        ("epochs", f"{result.epoch} of {cfg['epochs']}"),
        ("time", f"{sum(h['seconds']):.1f} s"),
    ]
    if h["epoch"]:
        rows.append(("train loss", f"{h['loss'][-1]:.4f}"))
        if h["val_loss"][-1] is not None:
            rows.append(("validation loss", f"{h['val_loss'][-1]:.4f}"))
    rows.append(("test loss", f"{test['loss']:.4f}"))
    if "accuracy" in test:
        if h["epoch"] and h["val_accuracy"][-1] is not None:
            rows.append(("validation accuracy", f"{100 * h['val_accuracy'][-1]:.2f}%"))
        rows.append(("test accuracy", f"{100 * test['accuracy']:.2f}%"))
    else:
        rows.append(("test MSE", f"{test['mse']:.4g}"))
    rows.append(("run folder", str(out)))
    rows.append(("plots", ", ".join(f.name for f in files if f.suffix == ".png") or "none"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _load_run(run: Path):
    cfg = read_config(run)
    if cfg.get("x64"):
        jax.config.update("jax_enable_x64", True)
    ckpt = checkpoint.load(Path(run) / CHECKPOINT)
    return cfg, ckpt


def _standardise(cfg: dict, X_raw: np.ndarray) -> np.ndarray:
    mean = np.asarray(cfg["scaler"]["mean"], np.float32)
    std = np.asarray(cfg["scaler"]["std"], np.float32)
    if X_raw.shape[1] != len(mean):
        raise ValueError(
            f"the input has {X_raw.shape[1]} features but the run was trained on d={len(mean)}"
        )
    return ((X_raw - mean) / std).astype(np.float32)


def _raw(ds: data.Dataset, X: np.ndarray) -> np.ndarray:
    """Undo a data set's own standardisation."""
    if ds.scaler is None:
        return X
    mean, std = ds.scaler
    return X * std + mean


def evaluate_command(args) -> int:
    """``jaxbp evaluate``: loss and accuracy/MSE of a run on its test split or on other data."""
    cfg, ckpt = _load_run(args.run)
    if args.data is None:
        ds = _load_data(cfg)
        X, y, where = ds.X_test, ds.y_test, f"the test split of {cfg['data']}"
    else:
        ds = data.load(args.data, key=jax.random.key(cfg["seed"]), target=args.target)
        X_raw = np.concatenate([_raw(ds, ds.X_train), _raw(ds, ds.X_test)])
        X = _standardise(cfg, X_raw)
        y = np.concatenate([ds.y_train, ds.y_test])
        where = f"all {len(X)} samples of {args.data}"
    metrics = evaluate(ckpt.net, ckpt.params, X, labels_for(cfg["head"], y))
    print(f"{args.run} on {where}:")
    for name, value in metrics.items():
        shown = f"{100 * value:.2f}%" if name == "accuracy" else f"{value:.4f}"
        print(f"  {name:<9} {shown}")
    return 0


def predict_command(args) -> int:
    """``jaxbp predict``: features from CSV/NPZ in, one prediction per row as CSV out."""
    cfg, ckpt = _load_run(args.run)
    X_raw = data.read_features(args.input, drop=cfg.get("target"))
    pred = np.asarray(predict(ckpt.net, ckpt.params, _standardise(cfg, X_raw)))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if ckpt.net.is_classifier:
        ids = _class_ids(cfg["head"], pred)
        classes = cfg.get("classes")
        writer.writerow(["prediction"])
        writer.writerows([[classes[i] if classes else int(i)] for i in ids])
    else:
        pred = pred.reshape(len(pred), -1)
        writer.writerow(
            ["prediction"] if pred.shape[1] == 1 else [f"y{k}" for k in range(pred.shape[1])]
        )
        writer.writerows(pred.tolist())
    if args.output:
        Path(args.output).write_text(buffer.getvalue())
        print(f"wrote {len(pred)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def sweep(cfg: dict, ds: data.Dataset, net: Net, optimizer, batch_size, out: Path, args) -> int:
    """``jaxbp train --seeds N``: N networks (seeds SEED..SEED+N−1) in one vmapped loop.

    Each model is initialised and shuffled as ``--seed s`` would; all train on the
    whole training split (no validation hold-out) and are compared on the test split.
    """
    seeds = list(range(cfg["seed"], cfg["seed"] + args.seeds))
    init_keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 0) for s in seeds])
    fit_keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds])
    dtype = jnp.float64 if cfg["x64"] else jnp.float32
    params = init_many(
        net,
        init_keys,
        d=cfg["d"],
        hidden=cfg["hidden"],
        out=cfg["out"],
        bias=cfg["bias"],
        dtype=dtype,
    )
    print(f"jaxbp train: {args.seeds} seeds of {_describe(cfg, ds)} → {out}", file=sys.stderr)
    result = fit_many(
        net, params, ds.X_train, labels_for(cfg["head"], ds.y_train), optimizer=optimizer,
        epochs=cfg["epochs"], batch_size=batch_size, key=fit_keys, grad=cfg["grad"],
        validation=(ds.X_test, labels_for(cfg["head"], ds.y_test)), progress=not args.quiet,
    )  # fmt: skip
    rows = []
    for i, seed in enumerate(seeds):
        params_i = jax.tree.map(lambda a, i=i: a[i], result.params)
        rows.append(
            {"seed": seed, "status": result.status[i]} | _test_metrics(cfg, ds, net, params_i)
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps(cfg | {"seeds": seeds}, indent=2))
    (out / "sweep.json").write_text(
        json.dumps({"models": rows, "history": result.history}, indent=1)
    )
    metric = "accuracy" if net.is_classifier else "mse"
    lines = [f"{'seed':>6}  {'status':<10} {'test loss':>10} {'test ' + metric:>14}"]
    for r in rows:
        shown = f"{100 * r[metric]:.2f}%" if metric == "accuracy" else f"{r[metric]:.4g}"
        lines.append(f"{r['seed']:>6}  {r['status']:<10} {r['loss']:>10.4f} {shown:>14}")
    values = np.array([r[metric] for r in rows])
    scale = 100 if metric == "accuracy" else 1
    lines.append(
        f"mean ± std of test {metric}: {scale * values.mean():.4g} ± {scale * values.std():.2g}"
    )
    lines.append(f"time {sum(result.history['seconds']):.1f} s; results in {out / 'sweep.json'}")
    print("\n".join(lines))
    return 1 if "diverged" in result.status else 0
