"""The commands that train and use a run: ``train`` (and ``--seeds``), ``evaluate``, ``predict``.

Each takes the parsed flags, builds or reads the :class:`~jaxbp.cli.config.RunConfig`
once, and hands only that config's products (net, optimizer, params, data) to the
library.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp import atomic
from jaxbp.cli import interrupt, multiprocess, runs
from jaxbp.cli.config import VALIDATION_FRACTION, ConfigError, RunConfig
from jaxbp.evaluation import class_probabilities, evaluate, predict
from jaxbp.many import fit_many, init_many
from jaxbp.train import FitResult, Interrupted, fit

EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def use_precision(cfg: RunConfig) -> None:
    """The one place that switches 64-bit JAX on (before any array is made)."""
    if cfg.x64:
        jax.config.update("jax_enable_x64", True)


def _describe(cfg: RunConfig, ds) -> str:
    batch = "full" if cfg.batch_size is None else cfg.batch_size
    return (
        f"{ds.name} ({len(ds.X_train)} train / {len(ds.X_test)} test, d={ds.d}), "
        f"σ={cfg.activation}, M={cfg.hidden}, head={cfg.head}, "
        f"{cfg.optimizer} lr={cfg.lr:g} ({cfg.schedule}), {cfg.epochs} epochs, "
        f"batch {batch}, grad={cfg.grad}"
    )


def labels(cfg: RunConfig, y) -> np.ndarray:
    """The data set's class ids (or targets) as the run's head takes them."""
    head = cfg.net().loss_head
    return head.labels_from_classes(y) if head.classifier else y


def train_command(args) -> int:
    """``jaxbp train``: train, checkpoint as it goes, then write history, plots and a summary."""
    flags = vars(args)
    if args.resume is not None:
        return _resume(args, flags)
    cfg = RunConfig.from_flags(flags)
    use_precision(cfg)
    ds = cfg.load_data()
    cfg = cfg.with_data(ds)
    out = Path(args.out) if args.out else runs.default_folder(cfg)
    if multiprocess.is_writer():  # with several processes, only process 0 writes
        runs.prepare_folder(out, overwrite=args.overwrite)
    if cfg.seeds > 1:
        return sweep(cfg, ds, out, quiet=args.quiet)
    net = cfg.net()
    init_key, fit_key = cfg.keys()
    params = cfg.init_params(net, init_key)
    return _train(cfg, ds, out, params, None, fit_key, quiet=args.quiet)


def _resume(args, flags) -> int:
    out = Path(args.resume)
    stored = runs.read_config(out)
    if stored.seeds > 1:
        raise ConfigError(f"{out} is a --seeds sweep; it cannot be resumed")
    cfg, notes = stored.resumed_with(flags)
    use_precision(cfg)
    ds = cfg.load_data()
    if cfg.with_data(ds) != cfg:
        raise runs.RunError(
            f"the data {cfg.data} no longer matches {out / runs.CONFIG} (sizes, classes or scaler)"
        )
    net = cfg.net()
    init_key, fit_key = cfg.keys()
    template = cfg.make_optimizer(len(ds.X_train)).init(cfg.init_params(net, init_key))
    ckpt = runs.load_checkpoint(out, cfg, opt_state_like=template)
    if ckpt.epoch >= cfg.epochs:
        print(f"{out} has already run {ckpt.epoch} of {cfg.epochs} epochs; nothing to do")
        return 0
    if ckpt.history.get("best_epoch"):
        print(f"{out} stopped early (best epoch {ckpt.epoch}); nothing to resume")
        return 0
    for note in notes:
        print(f"jaxbp train: resuming with {note}", file=sys.stderr)
    state = (ckpt.params, ckpt.opt_state, ckpt.epoch, ckpt.history)
    return _train(cfg, ds, out, None, state, fit_key, quiet=args.quiet)


def _train(cfg: RunConfig, ds, out: Path, params, state, fit_key, *, quiet: bool) -> int:
    from jaxbp.train import TrainState

    net = cfg.net()
    state = TrainState(params, None) if state is None else TrainState(*state)
    logged = not quiet and not sys.stderr.isatty()  # a log file: plain lines, not a bar
    saver = runs.Saver(out, cfg, fit_key, log_every=max(1, cfg.epochs // 10) if logged else None)
    print(f"jaxbp train: {_describe(cfg, ds)} → {out}", file=sys.stderr)
    interrupt.check()  # Ctrl-C while loading or preparing: nothing to save yet
    try:
        data = multiprocess.fit_data(ds.X_train, labels(cfg, ds.y_train), fit_key,
                                     VALIDATION_FRACTION, cfg.devices)  # fmt: skip
        result = fit(
            net, state.params, data.pop("X"), data.pop("Y"),
            optimizer=cfg.make_optimizer(len(ds.X_train)), epochs=cfg.epochs - state.epoch,
            batch_size=cfg.batch_size, key=fit_key, grad=cfg.grad,
            early_stopping=cfg.early_stopping,
            progress=not quiet and sys.stderr.isatty(), state=state,
            callback=saver if multiprocess.is_writer() else multiprocess.follower_callback,
            **data,
        )  # fmt: skip
    except Interrupted as stop:  # the second Ctrl-C: the last finished epoch
        result = stop.result
    interrupt.finishing()
    if not multiprocess.is_writer():  # process 0 writes the run folder and the summary
        return EXIT_DIVERGED if result.status == "diverged" else 0
    unsaved = result.epoch > state.epoch and saver.saved_epoch != result.epoch
    if unsaved or (result.status != "stopped" and not (out / runs.CHECKPOINT).exists()):
        saver.save(result)  # an interrupted run with no epoch done saves nothing
    if not (out / runs.CHECKPOINT).exists():  # interrupted before the first epoch ended
        return _exit(cfg, result, out)
    files = runs.write_outputs(out, cfg, ds, net, result)
    print(_summary(cfg, ds, net, result, out, files))
    return _exit(cfg, result, out)


def _exit(cfg: RunConfig, result: FitResult, out: Path) -> int:
    if result.status == "stopped":
        if (out / runs.CHECKPOINT).exists():
            print(
                f"jaxbp train: interrupted; epochs up to {result.epoch} are saved in {out}; "
                f"continue with: jaxbp train --resume {out}",
                file=sys.stderr,
            )
        else:
            print("jaxbp train: interrupted before the first epoch ended; nothing was saved",
                  file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    if result.status == "diverged":
        epoch = result.history["diverged_epoch"][-1]
        print(
            f"jaxbp train: training diverged at epoch {epoch} (the loss became NaN or inf); "
            f"the last finite parameters (epoch {result.epoch}) are saved in {out}. "
            f"Try a smaller learning rate, e.g. --lr {cfg.lr / 10:g}.",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return 0


def _summary(cfg: RunConfig, ds, net, result: FitResult, out: Path, files) -> str:
    h = result.history
    rows = [
        ("status", result.status),
        ("epochs", f"{result.epoch} of {cfg.epochs}"),
        ("time", f"{sum(h['seconds']):.1f} s"),
    ]
    if h["epoch"]:
        rows.append(("train loss", f"{h['loss'][-1]:.4f}"))
        if h["val_loss"][-1] is not None:
            rows.append(("validation loss", f"{h['val_loss'][-1]:.4f}"))
    test = evaluate(net, result.params, ds.X_test, labels(cfg, ds.y_test))
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


def _raw(ds, X: np.ndarray) -> np.ndarray:
    """Undo a data set's own standardisation."""
    if ds.scaler is None:
        return X
    mean, std = ds.scaler
    return X * std + mean


def run_class_ids(cfg: RunConfig, ds, y: np.ndarray, where: str) -> np.ndarray:
    """The labels of another data set as the run's class ids (the run's classes are the map).

    A label the run never saw is refused, naming it and listing the run's classes.
    """
    if ds.classes is None or cfg.classes is None:
        raise ConfigError(f"{where} holds real-valued targets, but the run classifies")
    index = {c: i for i, c in enumerate(cfg.classes)}
    original = np.asarray(ds.classes)[np.asarray(y)].tolist()
    unknown = sorted({c for c in original if c not in index}, key=str)
    if unknown:
        raise ConfigError(
            f"{where} holds the label {unknown[0]!r}, which the run was not trained on; "
            f"the run's classes are {list(cfg.classes)}"
        )
    return np.asarray([index[c] for c in original], np.int64)


def _load_run(run) -> tuple[RunConfig, object]:
    cfg = runs.read_config(Path(run))
    if cfg.seeds > 1:
        raise runs.RunError(
            f"{run} is a --seeds sweep of {cfg.seeds} networks: its per-seed test results "
            f"are in {Path(run) / runs.SWEEP}; evaluate and predict need a single run"
        )
    use_precision(cfg)
    return cfg, runs.load_checkpoint(Path(run), cfg)


def evaluate_command(args) -> int:
    """``jaxbp evaluate``: loss and accuracy/MSE of a run on its test split or on other data."""
    from jaxbp import data

    cfg, ckpt = _load_run(args.run)
    if args.data is None:
        ds = cfg.load_data()
        X, y, where = ds.X_test, labels(cfg, ds.y_test), f"the test split of {cfg.data}"
    else:
        ds = data.load(args.data, key=jax.random.key(cfg.seed), target=args.target)
        X = cfg.standardise(np.concatenate([_raw(ds, ds.X_train), _raw(ds, ds.X_test)]))
        y = np.concatenate([ds.y_train, ds.y_test])
        where = f"all {len(X)} samples of {args.data}"
        if ckpt.net.is_classifier:
            y = labels(cfg, run_class_ids(cfg, ds, y, args.data))
    metrics = evaluate(ckpt.net, ckpt.params, X, y)
    print(f"{args.run} on {where}:")
    for name, value in metrics.items():
        shown = f"{100 * value:.2f}%" if name == "accuracy" else f"{value:.4f}"
        print(f"  {name:<9} {shown}")
    return 0


def predict_command(args) -> int:
    """``jaxbp predict``: features from CSV/NPZ in, one prediction per row as CSV out."""
    from jaxbp import data

    cfg, ckpt = _load_run(args.run)
    X_raw = data.read_features(args.input, drop=cfg.target, columns=cfg.features)
    X = cfg.standardise(X_raw)
    net, params = ckpt.net, ckpt.params
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if net.is_classifier:
        from jaxbp.evaluation import predict_classes

        ids = np.asarray(predict_classes(net, params, X))
        classes = cfg.classes or list(range(cfg.out))
        header, rows = ["prediction"], [[classes[i]] for i in ids]
        if args.probabilities:
            probs = np.asarray(class_probabilities(net, params, X))
            header += [f"p({c})" for c in classes]
            rows = [r + p.tolist() for r, p in zip(rows, probs, strict=True)]
        writer.writerow(header)
        writer.writerows(rows)
    else:
        pred = np.asarray(predict(net, params, X)).reshape(len(X), -1)
        writer.writerow(
            ["prediction"] if pred.shape[1] == 1 else [f"y{k}" for k in range(pred.shape[1])]
        )
        writer.writerows(pred.tolist())
    if args.output:
        atomic.write_text(Path(args.output), buffer.getvalue())
        print(f"wrote {len(X)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def sweep(cfg: RunConfig, ds, out: Path, *, quiet: bool) -> int:
    """``jaxbp train --seeds N``: N networks (seeds SEED..SEED+N−1) in one vmapped loop.

    Each model is initialised and shuffled as ``--seed s`` would; all train on the
    whole training split (no validation hold-out) and are compared on the test split.
    """
    net = cfg.net()
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    keys = [cfg.keys(s) for s in seeds]
    init_keys, fit_keys = (jnp.stack(k) for k in zip(*keys, strict=True))
    params = init_many(
        net, init_keys, d=cfg.d, hidden=cfg.hidden, out=cfg.out, bias=cfg.bias, dtype=cfg.dtype
    )
    print(f"jaxbp train: {cfg.seeds} seeds of {_describe(cfg, ds)} → {out}", file=sys.stderr)
    result = fit_many(
        net, params, ds.X_train, labels(cfg, ds.y_train),
        optimizer=cfg.make_optimizer(len(ds.X_train), validation=False), epochs=cfg.epochs,
        batch_size=cfg.batch_size, key=fit_keys, grad=cfg.grad,
        validation=(ds.X_test, labels(cfg, ds.y_test)), progress=not quiet and sys.stderr.isatty(),
        callback=lambda epoch, result: interrupt.requested(),
    )  # fmt: skip
    if interrupt.requested():
        print("jaxbp train: interrupted; a --seeds sweep writes its results when it ends, "
              "so nothing was saved", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    rows = []
    for i, seed in enumerate(seeds):
        params_i = jax.tree.map(lambda a, i=i: a[i], result.params)
        test = evaluate(net, params_i, ds.X_test, labels(cfg, ds.y_test))
        rows.append({"seed": seed, "status": result.status[i]} | test)
    atomic.write_text(
        out / runs.SWEEP, json.dumps({"models": rows, "history": result.history}, indent=1)
    )
    runs.write_config(out, cfg)
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
    lines.append(f"time {sum(result.history['seconds']):.1f} s; results in {out / runs.SWEEP}")
    print("\n".join(lines))
    return EXIT_DIVERGED if "diverged" in result.status else 0
