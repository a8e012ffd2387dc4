"""A battery of bad arguments to jaxbp's public API, each of which must fail clearly.

Each case is a short name, a callable that makes one bad call, and what counts as
right: a ``ValueError`` or ``TypeError`` (the case says which types) whose message
names the argument (``word``, matched as a whole name, case-sensitive). Anything
else is a failure: no exception (a silent answer), another exception type
(``IndexError``, ``AttributeError``, ``ZeroDivisionError``, an XLA error...), or a
message that does not say which argument is wrong.

Run it::

    python scripts/bad_inputs.py          # prints a table and the counts; exit 1 on any failure
    python scripts/bad_inputs.py -q       # only the failures and the counts

``tests/test_bad_inputs.py`` imports this file and runs the same battery.
"""

from __future__ import annotations

import io
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

if __name__ == "__main__":  # run as a script: test this checkout's jaxbp, not an installed one
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxbp

D, M, K, N = 3, 4, 3, 6
VE, TE = (ValueError,), (TypeError,)
EITHER = (ValueError, TypeError)


class Case(NamedTuple):
    """One bad call: ``call()`` must raise one of ``errors`` with ``word`` in the message."""

    name: str
    call: Callable[[], object]
    errors: tuple[type[BaseException], ...]
    word: str


class Outcome(NamedTuple):
    name: str
    clear: bool
    got: str


def _fixtures():
    """One tiny softmax net, its θ, a batch, and the same for the logistic head."""
    net = jaxbp.Net(activation="tanh", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=D, hidden=M, out=K)
    X = np.asarray(jax.random.normal(jax.random.key(1), (N, D)), np.float32)
    Y = np.arange(N) % K
    logistic = jaxbp.Net(head="logistic")
    lparams = jaxbp.init(logistic, jax.random.key(0), d=D, hidden=M, out=1)
    keys = jax.random.split(jax.random.key(2), 2)
    many = jaxbp.init_many(net, keys, d=D, hidden=M, out=K)
    return net, params, X, Y, logistic, lparams, keys, many


def _squared():
    """A squared-loss net with K = 2 and its θ."""
    net = jaxbp.Net(activation="relu", head="squared")
    return net, jaxbp.init(net, jax.random.key(0), d=D, hidden=M, out=2)


def cases() -> list[Case]:
    """The battery: every case builds its call lazily from the shared tiny fixtures."""
    net, params, X, Y, logistic, lparams, keys, many = _fixtures()
    key = jax.random.key(3)
    opt = optax.sgd(0.1)
    hyper = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    nan, inf = math.nan, math.inf
    X0, Y0 = X[:0], Y[:0]
    Xc = X.astype(np.complex64) + 1j
    Xb = X > 0
    Xo = X.astype(object)
    iparams = jax.tree.map(lambda a: a.astype(jnp.int32), params)
    cparams = params._replace(V=params.V.astype(jnp.complex64))
    Xl, Yl = X, np.where(np.arange(N) % 2, 1, -1)
    sq, sparams = _squared()
    Ys = np.ones((N, 2))

    def fit(*args, **kw):
        base = dict(optimizer=opt, epochs=1, key=key, progress=False)
        a = (net, params, X, Y)
        a = args + a[len(args) :]
        return jaxbp.fit(*a, **(base | kw))

    def fit_many(*args, **kw):
        base = dict(optimizer=opt, epochs=1, key=key, progress=False)
        a = (net, many, X, Y)
        a = args + a[len(args) :]
        return jaxbp.fit_many(*a, **(base | kw))

    def init(**kw):
        return jaxbp.init(**(dict(net=net, key=key, d=D, hidden=M, out=K) | kw))

    C = Case
    # fmt: off
    return [
        # --- Net -----------------------------------------------------------------------
        C("Net activation=5", lambda: jaxbp.Net(activation=5), TE, "activation"),
        C("Net activation unknown", lambda: jaxbp.Net(activation="nope"), VE, "activation"),
        C("Net head unknown", lambda: jaxbp.Net(head="nope"), VE, "head"),
        C("Net head=3", lambda: jaxbp.Net(head=3), EITHER, "head"),
        C("Net output on softmax", lambda: jaxbp.Net(head="softmax", output="tanh"), VE, "output"),
        C("Net output unknown", lambda: jaxbp.Net(output="nope"), VE, "output"),
        C("Net negative_slope=nan", lambda: jaxbp.Net(negative_slope=nan), VE, "negative_slope"),
        C("Net negative_slope=inf", lambda: jaxbp.Net(negative_slope=inf), VE, "negative_slope"),
        C("Net negative_slope='a'", lambda: jaxbp.Net(negative_slope="a"), TE, "negative_slope"),
        C("Net negative_slope=None", lambda: jaxbp.Net(negative_slope=None), TE, "negative_slope"),
        C("Net negative_slope=True", lambda: jaxbp.Net(negative_slope=True), TE, "negative_slope"),
        C("Net negative_slope=array", lambda: jaxbp.Net(negative_slope=np.ones(2)), TE,
          "negative_slope"),
        C("Net matmul_dtype=float16", lambda: jaxbp.Net(matmul_dtype="float16"), VE,
          "matmul_dtype"),
        # --- init ----------------------------------------------------------------------
        C("init net=None", lambda: init(net=None), TE, "net"),
        C("init net='relu'", lambda: init(net="relu"), TE, "net"),
        C("init key=5", lambda: init(key=5), TE, "key"),
        C("init key=None", lambda: init(key=None), TE, "key"),
        C("init d=0", lambda: init(d=0), VE, "d"),
        C("init d=2.5", lambda: init(d=2.5), EITHER, "d"),
        C("init hidden=True", lambda: init(hidden=True), EITHER, "hidden"),
        C("init out=-1", lambda: init(out=-1), VE, "out"),
        C("init out='3'", lambda: init(out="3"), EITHER, "out"),
        C("init logistic out=2", lambda: init(net=logistic, out=2), VE, "out"),
        C("init scheme unknown", lambda: init(scheme="xavier"), VE, "scheme"),
        C("init scheme=5", lambda: init(scheme=5), EITHER, "scheme"),
        C("init scale=nan", lambda: init(scale=nan), VE, "scale"),
        C("init scale=-1", lambda: init(scale=-1.0), VE, "scale"),
        C("init scale=inf", lambda: init(scale=inf), VE, "scale"),
        C("init scale='1'", lambda: init(scale="1"), TE, "scale"),
        C("init scale=None", lambda: init(scale=None), TE, "scale"),
        C("init dtype=int32", lambda: init(dtype=jnp.int32), TE, "dtype"),
        C("init dtype=float64 (x64 off)", lambda: init(dtype="float64"), VE, "dtype"),
        C("init dtype='nope'", lambda: init(dtype="nope"), TE, "dtype"),
        C("init bias='yes'", lambda: init(bias="yes"), TE, "bias"),
        # --- forward / forward_cache / predict / class_probabilities -------------------
        C("forward net=None", lambda: jaxbp.forward(None, params, X), TE, "net"),
        C("forward net='relu'", lambda: jaxbp.forward("relu", params, X), TE, "net"),
        C("forward params=None", lambda: jaxbp.forward(net, None, X), TE, "params"),
        C("forward params=(V, W) tuple", lambda: jaxbp.forward(net, (params.V, params.W), X),
          TE, "params"),
        C("forward x=None", lambda: jaxbp.forward(net, params, None), TE, "x"),
        C("forward x='abc'", lambda: jaxbp.forward(net, params, "abc"), TE, "x"),
        C("forward x complex", lambda: jaxbp.forward(net, params, Xc), TE, "x"),
        C("forward x bool", lambda: jaxbp.forward(net, params, Xb), TE, "x"),
        C("forward x object", lambda: jaxbp.forward(net, params, Xo), TE, "x"),
        C("forward x strings", lambda: jaxbp.forward(net, params, np.array([["a"] * D])), TE,
          "x"),
        C("forward x wrong d", lambda: jaxbp.forward(net, params, X[:, :2]), VE, "x"),
        C("forward x 3-D", lambda: jaxbp.forward(net, params, X[None]), VE, "x"),
        C("forward x scalar", lambda: jaxbp.forward(net, params, 1.0), VE, "x"),
        C("forward integer params", lambda: jaxbp.forward(net, iparams, X), TE, "params.V"),
        C("forward complex params.V", lambda: jaxbp.forward(net, cparams, X), TE, "params.V"),
        C("forward params.V list", lambda: jaxbp.forward(net, params._replace(V=[[1.0]]), X),
          TE, "params.V"),
        C("forward params.V 1-D", lambda: jaxbp.forward(net, params._replace(V=params.V[0]), X),
          VE, "params.V"),
        C("forward params.W wrong M",
          lambda: jaxbp.forward(net, params._replace(W=params.W[:, :2]), X), VE, "params.W"),
        C("forward params.b wrong shape",
          lambda: jaxbp.forward(net, params._replace(b=jnp.zeros(M + 1)), X), VE, "params.b"),
        C("forward params.c list", lambda: jaxbp.forward(net, params._replace(c=[0.0] * K), X),
          TE, "params.c"),
        C("forward integer params.b",
          lambda: jaxbp.forward(net, params._replace(b=jnp.zeros(M, int)), X), TE, "params.b"),
        C("forward_cache net=None", lambda: jaxbp.forward_cache(None, params, X, Y), TE, "net"),
        C("forward_cache X complex", lambda: jaxbp.forward_cache(net, params, Xc, Y), TE, "X"),
        C("predict net=None", lambda: jaxbp.predict(None, params, X), TE, "net"),
        C("predict X=None", lambda: jaxbp.predict(net, params, None), TE, "X"),
        C("predict X complex", lambda: jaxbp.predict(net, params, Xc), TE, "X"),
        C("predict integer params", lambda: jaxbp.predict(net, iparams, X), TE, "params.V"),
        C("class_probabilities X bool", lambda: jaxbp.class_probabilities(net, params, Xb), TE,
          "X"),
        # --- loss / gradients ----------------------------------------------------------
        C("loss n=0", lambda: jaxbp.loss(net, params, X0, Y0), VE, "X"),
        C("loss Y=None", lambda: jaxbp.loss(net, params, X, None), TE, "Y"),
        C("loss Y='abc'", lambda: jaxbp.loss(net, params, X, "abc"), TE, "Y"),
        C("loss Y complex", lambda: jaxbp.loss(net, params, X, Y.astype(complex)), TE, "Y"),
        C("loss Y wrong n", lambda: jaxbp.loss(net, params, X, Y[:-1]), VE, "Y"),
        C("loss Y wrong K", lambda: jaxbp.loss(net, params, X, np.zeros((N, K + 1))), VE, "Y"),
        C("loss Y class id >= K", lambda: jaxbp.loss(net, params, X, Y + K), VE, "Y"),
        C("loss Y float ids (softmax)", lambda: jaxbp.loss(net, params, X, Y * 1.0), TE, "Y"),
        C("loss logistic 0/1 labels",
          lambda: jaxbp.loss(logistic, lparams, Xl, (Yl + 1) // 2), VE, "Y"),
        C("loss squared Y complex", lambda: jaxbp.loss(sq, sparams, X, Ys + 1j), TE, "Y"),
        C("loss squared Y bool", lambda: jaxbp.loss(sq, sparams, X, Ys > 0), TE, "Y"),
        C("loss squared n=0", lambda: jaxbp.loss(sq, sparams, X0, Ys[:0]), VE, "X"),
        C("loss X complex", lambda: jaxbp.loss(net, params, Xc, Y), TE, "X"),
        C("loss integer params", lambda: jaxbp.loss(net, iparams, X, Y), TE, "params.V"),
        C("loss net=None", lambda: jaxbp.loss(None, params, X, Y), TE, "net"),
        C("loss n=0 under jit", lambda: jax.jit(jaxbp.loss)(net, params, X0, Y0), VE, "X"),
        C("batch_grad n=0", lambda: jaxbp.batch_grad(net, params, X0, Y0), VE, "X"),
        C("batch_grad n=0 vmap", lambda: jaxbp.batch_grad(net, params, X0, Y0, method="vmap"),
          VE, "X"),
        C("batch_grad n=0 autodiff",
          lambda: jaxbp.batch_grad(net, params, X0, Y0, method="autodiff"), VE, "X"),
        C("batch_grad method='nope'", lambda: jaxbp.batch_grad(net, params, X, Y, method="nope"),
          VE, "method"),
        C("batch_grad method=None", lambda: jaxbp.batch_grad(net, params, X, Y, method=None),
          EITHER, "method"),
        C("batch_grad one sample", lambda: jaxbp.batch_grad(net, params, X[0], Y[0]), VE, "X"),
        C("batch_grad X complex", lambda: jaxbp.batch_grad(net, params, Xc, Y), TE, "X"),
        C("batch_grad integer params", lambda: jaxbp.batch_grad(net, iparams, X, Y), TE,
          "params.V"),
        C("batch_grad net=None", lambda: jaxbp.batch_grad(None, params, X, Y), TE, "net"),
        C("manual_grad a batch", lambda: jaxbp.manual_grad(net, params, X, Y), VE, "x"),
        C("manual_grad x complex", lambda: jaxbp.manual_grad(net, params, Xc[0], Y[0]), TE, "x"),
        C("manual_grad y wrong K",
          lambda: jaxbp.manual_grad(net, params, X[0], np.zeros(K + 1)), VE, "y"),
        C("autodiff_grad n=0", lambda: jaxbp.autodiff_grad(net, params, X0, Y0), VE, "X"),
        C("autodiff_grad net=None", lambda: jaxbp.autodiff_grad(None, params, X, Y), TE, "net"),
        C("per_sample_grads one sample",
          lambda: jaxbp.per_sample_grads(net, params, X[0], Y[0]), VE, "X"),
        C("per_sample_grads X complex", lambda: jaxbp.per_sample_grads(net, params, Xc, Y), TE,
          "X"),
        C("per_sample_grads integer params",
          lambda: jaxbp.per_sample_grads(net, iparams, X, Y), TE, "params.V"),
        C("per_sample_grads net=None", lambda: jaxbp.per_sample_grads(None, params, X, Y), TE,
          "net"),
        C("per_sample_grad_norms X bool",
          lambda: jaxbp.per_sample_grad_norms(net, params, Xb, Y), TE, "X"),
        C("per_sample_grad_norms Y=None",
          lambda: jaxbp.per_sample_grad_norms(net, params, X, None), TE, "Y"),
        C("per_sample_grad_norms net=None",
          lambda: jaxbp.per_sample_grad_norms(None, params, X, Y), TE, "net"),
        C("gradcheck eps=0", lambda: jaxbp.gradcheck(net, params, X, Y, eps=0.0), VE, "eps"),
        C("gradcheck eps=-1", lambda: jaxbp.gradcheck(net, params, X, Y, eps=-1e-6), VE, "eps"),
        C("gradcheck eps=nan", lambda: jaxbp.gradcheck(net, params, X, Y, eps=nan), VE, "eps"),
        C("gradcheck eps='a'", lambda: jaxbp.gradcheck(net, params, X, Y, eps="a"), TE, "eps"),
        C("gradcheck n=0", lambda: jaxbp.gradcheck(net, params, X0, Y0), VE, "X"),
        C("gradcheck X complex", lambda: jaxbp.gradcheck(net, params, Xc, Y), TE, "X"),
        C("gradcheck integer params", lambda: jaxbp.gradcheck(net, iparams, X, Y), TE,
          "params.V"),
        C("gradcheck net=None", lambda: jaxbp.gradcheck(None, params, X, Y), TE, "net"),
        # --- check_data / evaluate -----------------------------------------------------
        C("check_data X NaN", lambda: jaxbp.check_data(net, params, X * nan, Y), VE, "X"),
        C("check_data Y one-hot not summing to 1",
          lambda: jaxbp.check_data(net, params, X, np.ones((N, K))), VE, "Y"),
        C("check_data n=0", lambda: jaxbp.check_data(net, params, X0, Y0), VE, "X"),
        C("check_data X complex", lambda: jaxbp.check_data(net, params, Xc, Y), TE, "X"),
        C("check_data integer params", lambda: jaxbp.check_data(net, iparams, X, Y), TE,
          "params.V"),
        C("check_data net=None", lambda: jaxbp.check_data(None, params, X, Y), TE, "net"),
        C("evaluate n=0", lambda: jaxbp.evaluate(net, params, X0, Y0), VE, "X"),
        C("evaluate Y wrong n", lambda: jaxbp.evaluate(net, params, X, Y[:-1]), VE, "Y"),
        C("evaluate X complex", lambda: jaxbp.evaluate(net, params, Xc, Y), TE, "X"),
        C("evaluate net='softmax'", lambda: jaxbp.evaluate("softmax", params, X, Y), TE, "net"),
        # --- fit -----------------------------------------------------------------------
        C("fit net=None", lambda: fit(None), TE, "net"),
        C("fit params=None", lambda: fit(net, None), TE, "params"),
        C("fit integer params", lambda: fit(net, iparams), TE, "params.V"),
        C("fit X=None", lambda: fit(net, params, None), TE, "X"),
        C("fit X='abc'", lambda: fit(net, params, "abc"), TE, "X"),
        C("fit X complex", lambda: fit(net, params, Xc), TE, "X"),
        C("fit Y wrong n", lambda: fit(net, params, X, Y[:-1]), VE, "Y"),
        C("fit optimizer='adam'", lambda: fit(optimizer="adam"), TE, "optimizer"),
        C("fit epochs=True", lambda: fit(epochs=True), EITHER, "epochs"),
        C("fit epochs=0", lambda: fit(epochs=0), VE, "epochs"),
        C("fit epochs=2.5", lambda: fit(epochs=2.5), EITHER, "epochs"),
        C("fit batch_size=True", lambda: fit(batch_size=True), EITHER, "batch_size"),
        C("fit batch_size=0", lambda: fit(batch_size=0), VE, "batch_size"),
        C("fit grad='nope'", lambda: fit(grad="nope"), VE, "grad"),
        C("fit weight_decay='0.1'", lambda: fit(weight_decay="0.1"), TE, "weight_decay"),
        C("fit weight_decay=-1", lambda: fit(weight_decay=-1.0), VE, "weight_decay"),
        C("fit weight_decay=nan", lambda: fit(weight_decay=nan), VE, "weight_decay"),
        C("fit history=[1, 2]", lambda: fit(history=[1, 2]), TE, "history"),
        C("fit history={} (no columns)", lambda: fit(history={}), VE, "history"),
        C("fit initial_epoch=-5", lambda: fit(initial_epoch=-5), VE, "initial_epoch"),
        C("fit initial_epoch=1.5", lambda: fit(initial_epoch=1.5), TE, "initial_epoch"),
        C("fit validation=X", lambda: fit(validation=X), TE, "validation"),
        C("fit validation=(X,)", lambda: fit(validation=(X,)), TE, "validation"),
        C("fit validation wrong d", lambda: fit(validation=(X[:, :2], Y)), VE, "validation[0]"),
        C("fit validation_fraction=1.5", lambda: fit(validation_fraction=1.5), VE,
          "validation_fraction"),
        C("fit validation and fraction", lambda: fit(validation=(X, Y), validation_fraction=0.5),
          VE, "validation"),
        C("fit early_stopping=0", lambda: fit(early_stopping=0), VE, "early_stopping"),
        C("fit opt_state of adam for sgd",
          lambda: fit(opt_state=optax.adam(0.1).init(params)), VE, "opt_state"),
        C("fit callback=5", lambda: fit(callback=5), TE, "callback"),
        C("fit key=5", lambda: fit(key=5), TE, "key"),
        C("fit key=None", lambda: fit(key=None), TE, "key"),
        C("fit state=5", lambda: fit(state=5), TE, "state"),
        C("fit progress='yes'", lambda: fit(progress="yes"), TE, "progress"),
        # --- init_many / fit_many ------------------------------------------------------
        C("init_many net=None", lambda: jaxbp.init_many(None, keys, d=D, hidden=M, out=K), TE,
          "net"),
        C("init_many keys=5", lambda: jaxbp.init_many(net, 5, d=D, hidden=M, out=K), TE, "keys"),
        C("init_many keys=None", lambda: jaxbp.init_many(net, None, d=D, hidden=M, out=K), TE,
          "keys"),
        C("init_many one key", lambda: jaxbp.init_many(net, key, d=D, hidden=M, out=K),
          EITHER, "keys"),
        C("init_many raw keys (2, 3)",
          lambda: jaxbp.init_many(net, np.zeros((2, 3), np.uint32), d=D, hidden=M, out=K), TE,
          "keys"),
        C("init_many scales wrong shape",
          lambda: jaxbp.init_many(net, keys, d=D, hidden=M, out=K, scales=[1.0]), VE, "scales"),
        C("init_many scales nan",
          lambda: jaxbp.init_many(net, keys, d=D, hidden=M, out=K, scales=[1.0, nan]), VE,
          "scales"),
        C("init_many scales negative",
          lambda: jaxbp.init_many(net, keys, d=D, hidden=M, out=K, scales=[1.0, -1.0]), VE,
          "scales"),
        C("init_many scales='a'",
          lambda: jaxbp.init_many(net, keys, d=D, hidden=M, out=K, scales="a"), TE, "scales"),
        C("init_many scale=nan",
          lambda: jaxbp.init_many(net, keys, d=D, hidden=M, out=K, scale=nan), VE, "scale"),
        C("fit_many net=None", lambda: fit_many(None), TE, "net"),
        C("fit_many params not stacked", lambda: fit_many(net, params), VE, "params"),
        C("fit_many params=None", lambda: fit_many(net, None), EITHER, "params"),
        C("fit_many integer params",
          lambda: fit_many(net, jax.tree.map(lambda a: a.astype(int), many)), TE, "params.V"),
        C("fit_many X=None", lambda: fit_many(net, many, None), TE, "X"),
        C("fit_many X complex", lambda: fit_many(net, many, Xc), TE, "X"),
        C("fit_many epochs=True", lambda: fit_many(epochs=True), EITHER, "epochs"),
        C("fit_many batch_size=0", lambda: fit_many(batch_size=0), VE, "batch_size"),
        C("fit_many key=5", lambda: fit_many(key=5), TE, "key"),
        C("fit_many 3 keys for 2 models",
          lambda: fit_many(key=jax.random.split(key, 3)), VE, "key"),
        C("fit_many hyperparams without inject",
          lambda: fit_many(hyperparams={"learning_rate": jnp.ones(2)}), TE, "hyperparams"),
        C("fit_many hyperparams unknown name",
          lambda: fit_many(optimizer=hyper, hyperparams={"lr": jnp.ones(2)}), VE, "hyperparams"),
        C("fit_many hyperparams wrong shape",
          lambda: fit_many(optimizer=hyper, hyperparams={"learning_rate": jnp.ones(3)}), VE,
          "hyperparams"),
        C("fit_many hyperparams=[1]", lambda: fit_many(optimizer=hyper, hyperparams=[1]), TE,
          "hyperparams"),
        C("fit_many validation=X", lambda: fit_many(validation=X), TE, "validation"),
        C("fit_many grad='nope'", lambda: fit_many(grad="nope"), VE, "grad"),
        C("fit_many progress='yes'", lambda: fit_many(progress="yes"), TE, "progress"),
        *_run_folder_cases(net, params, X, Y),
    ]
    # fmt: on


def _run_folder_cases(net, params, X, Y) -> list[Case]:
    """The one writer, the one reader, the lock, write_run, non-finite inputs (issue 14)."""
    import atexit
    import os
    import shutil
    import tempfile
    import zipfile

    from jaxbp import checkpoint, data
    from jaxbp.runs import files, lock, write_run

    tmp = Path(tempfile.mkdtemp(prefix="jaxbp-bad-"))
    atexit.register(shutil.rmtree, tmp, True)
    user = tmp / "user.csv"
    user.write_text("a,b\n1,2\n")
    link = tmp / "link.csv"
    link.symlink_to(user)
    fifo = tmp / "fifo.csv"
    os.mkfifo(fifo)
    (tmp / "dir").mkdir()
    run = tmp / "run"
    write_run(run, {"data": "xor"}, net=net, params=params)
    (run / "manifest.json").write_text('{"files": ["checkpoint.npz", "config.json", "x.bin"]}')
    bomb = tmp / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (600_000_000,)}
    )
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", header.getvalue())
        archive.writestr("y.npy", header.getvalue())
    objects = tmp / "objects.npz"
    np.savez(objects, X=np.array([object()], dtype=object), y=np.zeros(1))
    wide = tmp / "wide.npz"
    np.savez(wide, X=np.zeros((100, 10)), y=np.zeros(100))
    big = tmp / "big.json"
    big.write_bytes(b" " * (files.JSON_LIMIT + 1))
    (tmp / "text.json").write_text("{not json")
    (tmp / "junk.npz").write_text("not a zip")
    Xn = np.array(X)
    Xn[2, 1] = np.nan
    Xi = np.array(X)
    Xi[4, 0] = np.inf
    nanx = tmp / "nan.csv"
    nanx.write_text("a,b,c\n1,2,3\n1,nan,3\n")
    WE = (ValueError, OSError)
    w = files.write_file

    def held():
        with lock.writer_lock(tmp / "dir"), lock.writer_lock(tmp / "dir"):
            pass

    C = Case
    # fmt: off
    return [
        C("write_file through a symlink", lambda: w(link, "x", overwrite=True), VE, "link.csv"),
        C("write_file onto a folder", lambda: w(tmp / "dir", "x", overwrite=True), VE, "dir"),
        C("write_file onto a FIFO", lambda: w(fifo, "x", overwrite=True), VE, "FIFO"),
        C("write_file onto /dev/null", lambda: w("/dev/null", "x", overwrite=True), VE, "device"),
        C("write_file onto an existing file", lambda: w(user, "x"), VE, "--overwrite"),
        C("write_file onto a run's config.json",
          lambda: w(run / "config.json", "x", overwrite=True), VE, "run"),
        C("write_file onto a run's checkpoint",
          lambda: w(run / "checkpoint.npz", "x", overwrite=True), VE, "run"),
        C("write_file onto a manifest-listed file",
          lambda: w(run / "x.bin", "x", overwrite=True), VE, "run"),
        C("write_file onto the input file",
          lambda: w(tmp / "." / "user.csv", "x", overwrite=True, protected=[user]), VE, "input"),
        C("write_file into a missing folder", lambda: w(tmp / "no" / "f", "x"), WE, "exist"),
        C("read_bytes of a FIFO", lambda: files.read_bytes(fifo), VE, "FIFO"),
        C("read_bytes of /dev/zero", lambda: files.read_bytes("/dev/zero"), VE, "device"),
        C("read_bytes of a folder", lambda: files.read_bytes(tmp), VE, "folder"),
        C("read_bytes over the limit", lambda: files.read_bytes(user, limit=3), VE, "bytes"),
        C("read_bytes of a missing file", lambda: files.read_bytes(tmp / "none"), WE, "exist"),
        C("read_json over 4 MB", lambda: files.read_json(big), VE, "bytes"),
        C("read_json of broken JSON", lambda: files.read_json(tmp / "text.json"), VE, "JSON"),
        C("check_npz of a zip bomb", lambda: files.check_npz(bomb), VE, "claims"),
        C("check_npz of object arrays", lambda: files.check_npz(objects), VE, "pickle"),
        C("check_npz over the limit", lambda: files.check_npz(wide, limit=100), VE, "claims"),
        C("check_npz of text", lambda: files.check_npz(tmp / "junk.npz"), VE, "readable"),
        C("checkpoint.save through a symlink",
          lambda: checkpoint.save(link, net=net, params=params), VE, "link.csv"),
        C("checkpoint.save onto a folder",
          lambda: checkpoint.save(tmp / "dir", net=net, params=params), VE, "dir"),
        C("checkpoint.load of a FIFO", lambda: checkpoint.load(fifo), VE, "regular"),
        C("write_run into a user's folder",
          lambda: write_run(tmp, {}, net=net, params=params), VE, "run"),
        C("write_run onto a run", lambda: write_run(run, {}, net=net, params=params), VE,
          "--overwrite"),
        C("write_run with NaN params",
          lambda: write_run(tmp / "nan-run", {}, net=net,
                            params=params._replace(V=params.V * np.nan)), VE, "params"),
        C("a second writer lock", held, VE, "pid"),
        C("predict on NaN X", lambda: jaxbp.predict(net, params, Xn), VE, "X"),
        C("predict on inf X", lambda: jaxbp.predict(net, params, Xi), VE, "X"),
        C("evaluate on NaN X", lambda: jaxbp.evaluate(net, params, Xn, Y), VE, "X"),
        C("class_probabilities on inf X",
          lambda: jaxbp.class_probabilities(net, params, Xi), VE, "X"),
        C("data.load of a zip bomb", lambda: data.load(str(bomb)), VE, "claims"),
        C("data.read_features of a FIFO", lambda: data.read_features(fifo), VE, "FIFO"),
        C("data.read_features of a zip bomb", lambda: data.read_features(bomb), VE, "claims"),
        C("data.read_labelled without target",
          lambda: data.read_labelled(user), VE, "--target"),
        C("data.read_labelled of a NaN CSV",
          lambda: data.read_labelled(nanx, target="c"), VE, "b"),
    ]
    # fmt: on


def _names_word(message: str, word: str) -> bool:
    """Whether ``word`` occurs in ``message`` as a whole name (not inside a longer one)."""
    return re.search(rf"(?<![\w.]){re.escape(word)}(?![\w])", message) is not None


def run_case(case: Case) -> Outcome:
    """Make the call; a clear error is one of ``case.errors`` whose message names the word."""
    try:
        result = case.call()
    except Exception as err:  # every kind of failure
        message = str(err).splitlines()[0] if str(err) else ""
        got = f"{type(err).__name__}: {message}"
        clear = isinstance(err, case.errors) and _names_word(str(err), case.word)
        if isinstance(err, case.errors) and not clear:
            got += f"  [message does not name {case.word!r}]"
        return Outcome(case.name, clear, got)
    return Outcome(case.name, False, f"no error: returned {type(result).__name__}")


def run(battery: list[Case] | None = None) -> list[Outcome]:
    """Run every case (the whole battery by default)."""
    return [run_case(c) for c in (cases() if battery is None else battery)]


def report(outcomes: list[Outcome], *, quiet: bool = False, width: int = 110) -> str:
    """A table (only the failures when ``quiet``) and the counts."""
    lines = []
    for o in outcomes:
        if quiet and o.clear:
            continue
        mark = "ok  " if o.clear else "FAIL"
        lines.append(f"{mark} {o.name:<38} {o.got}"[:width])
    clear = sum(o.clear for o in outcomes)
    lines.append(
        f"tried {len(outcomes)} / clear error {clear} / anything else {len(outcomes) - clear}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    outcomes = run()
    print(f"jaxbp from {Path(jaxbp.__file__).parent}")
    print(report(outcomes, quiet="-q" in argv))
    return 0 if all(o.clear for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
