"""The commands that train and use a run: ``train`` (and ``--seeds``), ``evaluate``, ``predict``.

Each takes the parsed flags, builds or reads the :class:`~jaxbp.cli.config.RunConfig`
once, and hands only that config's products (net, optimizer, params, data) to the
library.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp.cli import interrupt, multiprocess, runs
from jaxbp.cli.config import VALIDATION_FRACTION, ConfigError, RunConfig
from jaxbp.evaluation import class_probabilities, evaluate, predict
from jaxbp.many import fit_many, init_many
from jaxbp.runs import RunFolder, fingerprint, new_run_id, write_file, writer_lock
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
    return cfg.net().loss_head.targets(y)


def train_command(args) -> int:
    """``jaxbp train``: train, checkpoint as it goes, then write history, plots and a summary."""
    flags = vars(args)
    if args.resume is not None:
        return _resume(args, flags)
    cfg = RunConfig.from_flags(flags)
    use_precision(cfg)
    ds = cfg.load_data()
    if cfg.head is None and cfg.data_task() is not None:
        print(f"jaxbp train: {_task_rule(ds)}", file=sys.stderr)
    cfg = dataclasses.replace(
        cfg.with_data(ds), run_id=new_run_id(), fingerprint=fingerprint(cfg.data, seed=cfg.seed)
    )
    out = Path(args.out) if args.out else runs.default_folder(cfg)
    writer = multiprocess.is_writer()  # with several processes, only process 0 writes
    created = runs.create_folder(out) if writer else False
    with _writer_lock(out):
        if writer:
            runs.prepare_folder(out, overwrite=args.overwrite)
        run = RunFolder(out, cfg.run_id, created=created)
        try:
            if cfg.seeds > 1:
                return sweep(cfg, ds, run, quiet=args.quiet)
            net = cfg.net()
            init_key, fit_key = cfg.keys()
            params = cfg.init_params(net, init_key)
            print(f"jaxbp train: {_describe(cfg, ds)} → {out}", file=sys.stderr)
            return _train(cfg, ds, run, params, None, fit_key, quiet=args.quiet)
        except BaseException:
            ended_empty = not (out / runs.CHECKPOINT).exists() and not (out / runs.SWEEP).exists()
            if writer and ended_empty:
                run.abandon()  # a run folder is resumable or absent
            raise


def _writer_lock(out: Path):
    """The run folder's writer lock; processes other than 0 of a multi-process run write
    nothing, so they take none (process 0 holds it for all of them)."""
    import contextlib

    return writer_lock(out) if multiprocess.is_writer() else contextlib.nullcontext()


def _task_rule(ds) -> str:
    """Which task the labels chose with --head unset, and how to choose the other."""
    if ds.task == "classification":
        return (
            f"the labels are {ds.n_classes} classes (strings or integers), so this is "
            "classification; pass --head squared for regression"
        )
    return (
        "the labels are real numbers (or more than 20 distinct integers), so this is "
        "regression; pass --head softmax to classify"
    )


# Flags that mean nothing on --resume (the run folder is the --resume folder).
_NOT_ON_RESUME = ("out", "overwrite")


def _resume(args, flags) -> int:
    out = Path(args.resume)
    for name in _NOT_ON_RESUME:
        if flags.get(name):
            raise ConfigError(
                f"--{name} has no meaning with --resume: a resumed run continues in its own "
                f"folder {out}; start a new run with --out for another folder"
            )
    stored = runs.read_config(out)
    if stored.seeds > 1:
        raise ConfigError(f"{out} is a --seeds sweep; it cannot be resumed")
    cfg, notes = stored.resumed_with(flags)
    use_precision(cfg)
    with _writer_lock(out):
        runs.check_data_unchanged(cfg, "the resumed run's data")
        ds = cfg.load_data()
        if cfg.with_data(ds) != cfg:
            raise runs.RunError(
                f"the data {cfg.data} no longer matches {out / runs.CONFIG} "
                "(sizes, classes or scaler)"
            )
        net = cfg.net()
        init_key, fit_key = cfg.keys()
        template = cfg.make_optimizer(len(ds.X_train)).init(cfg.init_params(net, init_key))
        ckpt = runs.load_checkpoint(out, cfg, opt_state_like=template)
        if ckpt.history.get("best_epoch"):
            print(f"{out} stopped early (best epoch {ckpt.epoch}); nothing to resume")
            return 0
        if ckpt.epoch >= cfg.epochs:
            print(
                f"{out} has already run {ckpt.epoch} of {cfg.epochs} epochs; nothing to do. "
                f"To train longer, give the new total: jaxbp train --resume {out} "
                f"--epochs {max(2 * ckpt.epoch, ckpt.epoch + 1)}"
            )
            return 0
        for note in notes:
            print(f"jaxbp train: resuming with {note}", file=sys.stderr)
        print(
            f"jaxbp train: resuming {out} at epoch {ckpt.epoch} of {cfg.epochs}: "
            f"{_describe(cfg, ds)}",
            file=sys.stderr,
        )
        state = (ckpt.params, ckpt.opt_state, ckpt.epoch, ckpt.history)
        run = RunFolder(out, cfg.run_id)
        return _train(cfg, ds, run, None, state, fit_key, quiet=args.quiet, committed=True)


def _train(
    cfg: RunConfig, ds, run: RunFolder, params, state, fit_key, *, quiet: bool,
    committed: bool = False,
) -> int:  # fmt: skip
    from jaxbp.train import TrainState

    out = run.folder
    net = cfg.net()
    state = TrainState(params, None) if state is None else TrainState(*state)
    logged = not quiet and not sys.stderr.isatty()  # a log file: plain lines, not a bar
    saver = runs.Saver(
        run, cfg, fit_key, log_every=max(1, cfg.epochs // 10) if logged else None,
        committed=committed,
    )  # fmt: skip
    interrupt.check()  # a signal while loading or preparing: nothing to save yet
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
            sample_weight=cfg.sample_weights(ds.y_train, ds.w_train), **data,
        )  # fmt: skip
    except Interrupted as stop:  # the second signal: the last finished epoch
        result = stop.result
    interrupt.finishing()
    if not multiprocess.is_writer():  # process 0 writes the run folder and the summary
        return EXIT_DIVERGED if result.status == "diverged" else 0
    unsaved = result.epoch > state.epoch and saver.saved_epoch != result.epoch
    if unsaved or (result.status != "stopped" and not saver.committed):
        saver.save(result)  # an interrupted run with no epoch done saves nothing
    if not saver.committed:  # interrupted before the first epoch ended
        run.abandon()
        return _exit(cfg, result, out)
    files = runs.write_outputs(run, cfg, ds, net, result)
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
        return interrupt.exit_code(EXIT_INTERRUPTED)
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
        ("time", f"{sum(h['seconds']):.1f} s training, {interrupt.seconds():.1f} s in all"),
    ]
    if h["epoch"]:
        rows.append(("train loss", f"{h['loss'][-1]:.4g}"))
        if h["val_loss"][-1] is not None:
            rows.append(("validation loss", f"{h['val_loss'][-1]:.4g}"))
    test = evaluate(
        net, result.params, ds.X_test, labels(cfg, ds.y_test),
        sample_weight=cfg.sample_weights(ds.y_test, ds.w_test),
    )  # fmt: skip
    rows.append(("test loss", f"{test['loss']:.4g}"))
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


def _label_key(value) -> str:
    """A label as text, numbers by value: 1, 1.0 and "1" are the same class."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def run_classes(cfg: RunConfig) -> list:
    """The run's classes in id order (0..C−1 when the data set named none)."""
    if cfg.classes is not None:
        return list(cfg.classes)
    return list(range(2 if cfg.head == "logistic" else cfg.out))


def run_class_ids(cfg: RunConfig, y_raw, where: str) -> np.ndarray:
    """The labels of another file as the run's class ids (the run's classes are the map).

    A subset of the classes, one class, or 0/1 labels are all fine; a label the run
    never saw is refused, naming it and listing the run's classes.
    """
    index = {_label_key(c): i for i, c in enumerate(run_classes(cfg))}
    values = np.asarray(y_raw).reshape(-1).tolist()
    unknown = sorted({v for v in values if _label_key(v) not in index}, key=str)
    if np.asarray(y_raw).ndim != 1:
        raise ConfigError(f"{where}: the run classifies; expected one label per row")
    if unknown:
        raise ConfigError(
            f"{where} holds the label {unknown[0]!r}, which the run was not trained on; "
            f"the run's classes are {run_classes(cfg)}"
        )
    return np.asarray([index[_label_key(v)] for v in values], np.int64)


def run_targets(cfg: RunConfig, y_raw, where: str) -> np.ndarray:
    """Regression targets of another file as floats of the run's width: never class ids."""
    y = np.asarray(y_raw)
    if not np.issubdtype(y.dtype, np.number):
        raise ConfigError(f"{where}: the run is a regression; its targets must be numbers")
    y = y.astype(np.float64)
    if y.ndim == 1 and cfg.out == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != cfg.out:
        raise ConfigError(f"{where}: targets of shape {y.shape}, the run predicts {cfg.out}")
    if not np.isfinite(y).all():
        i, j = (int(k) for k in np.argwhere(~np.isfinite(y))[0])
        raise ConfigError(f"{where}: row {i + 1}, target {j + 1} is NaN or inf")
    return y.astype(np.dtype(cfg.dtype))


def _load_run(run) -> tuple[RunConfig, object]:
    cfg = runs.read_config(Path(run))
    if cfg.seeds > 1:
        raise runs.RunError(
            f"{run} is a --seeds sweep of {cfg.seeds} networks: its per-seed test results "
            f"are in {Path(run) / runs.SWEEP}; evaluate and predict need a single run"
        )
    use_precision(cfg)
    return cfg, runs.load_checkpoint(Path(run), cfg)


def _file_samples(cfg: RunConfig, spec: str, target: str | None):
    """(X, y, w, where) of a data file through the run's schema (features, target, task).

    y holds the run's class ids (a classifier) or its targets; w the file's weight column
    (the run's ``--weight-column``, when the file is a CSV) or None.
    """
    from jaxbp import data

    suffix = Path(spec).suffix.lower()
    if target is not None and cfg.target is not None and target != cfg.target:
        raise ConfigError(
            f"--target {target}: the run predicts the column {cfg.target!r}; leave --target "
            "out (the run's target is used)"
        )
    if target is not None and suffix != ".csv":
        raise ConfigError(f"--target names a CSV column; {spec} is not a CSV file")
    if suffix in (".csv", ".npz"):
        X_raw, y_raw = data.read_labelled(spec, target=target or cfg.target, columns=cfg.features)
    else:  # a built-in data set: its own labels, read through the run's classes
        if cfg.features is not None:
            raise ConfigError(
                f"{spec} is a built-in data set without column names, but the run was trained "
                f"on the CSV columns {', '.join(map(repr, cfg.features))}: evaluate a CSV "
                "with those columns"
            )
        ds = data.load(spec, key=jax.random.key(cfg.seed), target=target)
        X_raw = data.unstandardise(np.concatenate([ds.X_train, ds.X_test]), ds.scaler)
        y = np.concatenate([ds.y_train, ds.y_test])
        cfg.standardise(X_raw, where=spec)  # the features first: d must match
        if ds.classes is not None:
            y = np.asarray(ds.classes)[np.asarray(y)]
        elif ds.n_classes is None and cfg.task == "classification":
            raise ConfigError(f"{spec} holds real-valued targets, but the run classifies")
        if ds.n_classes is not None and cfg.task == "regression":
            raise ConfigError(f"{spec} holds class labels, but the run is a regression")
        y_raw = y
    X = cfg.standardise(X_raw, where=spec)
    if cfg.task == "classification" or cfg.net().is_classifier:
        y = run_class_ids(cfg, y_raw, spec)
    else:
        y = run_targets(cfg, y_raw, spec)
    w = None
    if cfg.weight_column is not None and suffix == ".csv":
        w = data.read_column(spec, cfg.weight_column)
    return X, y, w, f"all {len(X)} samples of {spec}"


def evaluate_command(args) -> int:
    """``jaxbp evaluate``: loss and accuracy/MSE of a run on its test split or on other data."""
    cfg, ckpt = _load_run(args.run)
    interrupt.check()
    if args.data is None:
        runs.check_data_unchanged(cfg, f"the test split of {cfg.data}")
        ds = cfg.load_data()
        if cfg.with_data(ds) != cfg:
            raise runs.RunError(
                f"the data {cfg.data} no longer matches {Path(args.run) / runs.CONFIG}; "
                "evaluate any file explicitly with --data FILE"
            )
        X, y, where = ds.X_test, labels(cfg, ds.y_test), f"the test split of {cfg.data}"
        weights = cfg.sample_weights(ds.y_test, ds.w_test)
    else:
        X, y, w, where = _file_samples(cfg, args.data, args.target)
        weights = cfg.sample_weights(y, w)
        if cfg.task == "classification" or cfg.net().is_classifier:
            y = labels(cfg, y)
    if weights is not None:
        where += " (weighted: " + ", ".join(_weighting(cfg)) + ")"
    interrupt.check()
    metrics = evaluate(ckpt.net, ckpt.params, X, y, sample_weight=weights)
    interrupt.check()
    print(f"{args.run} on {where}:")
    for name, value in metrics.items():
        shown = f"{100 * value:.2f}%" if name == "accuracy" else f"{value:.4g}"
        print(f"  {name:<9} {shown}")
    return 0


def _weighting(cfg: RunConfig) -> list[str]:
    shown = [f"--weight-column {cfg.weight_column}"] if cfg.weight_column else []
    return shown + ([f"--class-weight {cfg.class_weight}"] if cfg.class_weight else [])


def predict_command(args) -> int:
    """``jaxbp predict``: features from CSV/NPZ in, one prediction per row as CSV out."""
    from jaxbp import data

    cfg, ckpt = _load_run(args.run)
    interrupt.check()
    if args.output:  # refuse a bad --output before the work, not after it
        from jaxbp.runs.files import check_target

        check_target(Path(args.output), overwrite=args.overwrite, protected=[args.input])
    X_raw = data.read_features(args.input, drop=cfg.target, columns=cfg.features)
    X = cfg.standardise(X_raw, where=args.input)
    net, params = ckpt.net, ckpt.params
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if net.is_classifier:
        from jaxbp.evaluation import predict_classes

        ids = np.asarray(predict_classes(net, params, X))
        classes = run_classes(cfg)
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
    interrupt.check()
    if args.output:
        with interrupt.committing():
            write_file(
                Path(args.output), buffer.getvalue(), overwrite=args.overwrite,
                protected=[args.input],
            )  # fmt: skip
            print(f"wrote {len(X)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def sweep(cfg: RunConfig, ds, run: RunFolder, *, quiet: bool) -> int:
    """``jaxbp train --seeds N``: N networks (seeds SEED..SEED+N−1) in one vmapped loop.

    Each model is initialised and shuffled as ``--seed s`` would; all train on the
    whole training split (no validation hold-out) and are compared on the test split.
    """
    out = run.folder
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
        sample_weight=cfg.sample_weights(ds.y_train, ds.w_train),
        callback=lambda epoch, result: interrupt.requested(),
    )  # fmt: skip
    if interrupt.requested():
        print("jaxbp train: interrupted; a --seeds sweep writes its results when it ends, "
              "so nothing was saved", file=sys.stderr)  # fmt: skip
        run.abandon()
        return interrupt.exit_code(EXIT_INTERRUPTED)
    rows = []
    for i, seed in enumerate(seeds):
        params_i = jax.tree.map(lambda a, i=i: a[i], result.params)
        test = evaluate(net, params_i, ds.X_test, labels(cfg, ds.y_test))
        rows.append({"seed": seed, "status": result.status[i]} | test)
    with interrupt.committing():
        run.write(runs.SWEEP, json.dumps({"models": rows, "history": result.history}, indent=1))
        run.write(runs.CONFIG, cfg.to_json())
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
