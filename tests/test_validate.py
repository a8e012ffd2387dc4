"""Every validation error: its type, and a message naming the argument and what was expected.

Shape errors are static, so they are raised at trace time under ``jax.jit`` too, as the
same ``ValueError`` (not an XLA error); value checks need concrete arrays (``check_data``).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxbp

D, M, N = 3, 4, 5


def make(head="softmax", K=None, *, bias=False):
    K = K or {"squared": 2, "logistic": 1, "softmax": 3}[head]
    net = jaxbp.Net(activation="tanh", head=head)
    params = jaxbp.init(net, jax.random.key(0), d=D, hidden=M, out=K, bias=bias)
    return net, params


def onehot(ids, K=3):
    return np.eye(K, dtype=np.float32)[np.asarray(ids)]


X = np.zeros((N, D), np.float32)
IDS = np.array([0, 1, 2, 0, 1])
Y = onehot(IDS)

# Every public function that takes (net, params, X, Y), as a batch and as one sample.
BATCH_FUNCTIONS = {
    "forward_cache": jaxbp.forward_cache,
    "loss": jaxbp.loss,
    "batch_grad": jaxbp.batch_grad,
    "per_sample_grads": jaxbp.per_sample_grads,
    "per_sample_grad_norms": jaxbp.per_sample_grad_norms,
    "autodiff_grad": jaxbp.autodiff_grad,
}
SINGLE_FUNCTIONS = {
    "forward_cache": jaxbp.forward_cache,
    "loss": jaxbp.loss,
    "manual_grad": jaxbp.manual_grad,
}


# ---- x against V -------------------------------------------------------------------------


def test_x_features_vs_V():
    net, params = make()
    msg = re.escape("x has 5 features but V expects d=3 (V.shape=(4, 3))")
    with pytest.raises(ValueError, match=msg):
        jaxbp.forward(net, params, np.zeros(5))
    with pytest.raises(ValueError, match=msg):
        jaxbp.manual_grad(net, params, np.zeros(5), Y[0])
    with pytest.raises(ValueError, match=re.escape("X has 5 features but V expects d=3")):
        jaxbp.batch_grad(net, params, np.zeros((N, 5)), Y)


@pytest.mark.parametrize("name", sorted(BATCH_FUNCTIONS))
def test_X_features_checked_by_every_batch_function(name):
    net, params = make()
    with pytest.raises(ValueError, match=r"[xX] has 2 features but V expects d=3"):
        BATCH_FUNCTIONS[name](net, params, np.zeros((N, 2)), Y)


def test_x_rank():
    net, params = make()
    with pytest.raises(
        ValueError, match=re.escape("x must have shape (d,) or (n, d), got shape (2, 2, 3)")
    ):
        jaxbp.forward(net, params, np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match=re.escape("got shape ()")):
        jaxbp.forward(net, params, np.float32(1.0))
    with pytest.raises(
        ValueError, match=r"x must have one sample of shape \(d,\); for a batch use batch_grad"
    ):
        jaxbp.manual_grad(net, params, X, Y)
    with pytest.raises(
        ValueError, match=r"X must have a batch of shape \(n, d\); for one sample use manual_grad"
    ):
        jaxbp.batch_grad(net, params, X[0], Y[0])
    for fn in (jaxbp.per_sample_grads, jaxbp.per_sample_grad_norms):
        with pytest.raises(ValueError, match="X must have a batch of shape"):
            fn(net, params, X[0], Y[0])


# ---- y against K ---------------------------------------------------------------------------


def test_y_outputs_vs_K():
    net, params = make("squared")
    with pytest.raises(ValueError, match="Y has 3 outputs per sample but W gives K=2"):
        jaxbp.batch_grad(net, params, X, np.zeros((N, 3)))
    with pytest.raises(ValueError, match="y has 3 outputs per sample but W gives K=2"):
        jaxbp.manual_grad(net, params, X[0], np.zeros(3))
    with pytest.raises(
        ValueError, match=re.escape("Y must have shape (5, 2) for K=2 outputs, got (5,)")
    ):
        jaxbp.loss(net, params, X, np.zeros(N))
    net, params = make("softmax")
    with pytest.raises(ValueError, match="Y has 2 outputs per sample but W gives K=3"):
        jaxbp.loss(net, params, X, onehot(IDS % 2, 2))


def test_y_rank_and_sample_count():
    net, params = make("squared")
    with pytest.raises(ValueError, match=re.escape("Y must have shape (n, K) or (n,) to match x")):
        jaxbp.loss(net, params, X, np.zeros((N, 2, 1)))
    with pytest.raises(ValueError, match=re.escape("y must have shape (K,) or () to match x")):
        jaxbp.manual_grad(net, params, X[0], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="X has n=5 samples but Y has 4"):
        jaxbp.batch_grad(net, params, X, np.zeros((4, 2)))


@pytest.mark.parametrize("name", sorted(BATCH_FUNCTIONS))
def test_Y_checked_by_every_batch_function(name):
    net, params = make("softmax")
    with pytest.raises(ValueError, match="Y has 4 outputs per sample but W gives K=3"):
        BATCH_FUNCTIONS[name](net, params, X, np.zeros((N, 4)))


@pytest.mark.parametrize("name", sorted(SINGLE_FUNCTIONS))
def test_y_checked_by_every_single_sample_function(name):
    net, params = make("softmax")
    # (forward_cache and loss name it after their batch argument, Y)
    with pytest.raises(ValueError, match=r"[yY] has 4 outputs per sample but W gives K=3"):
        SINGLE_FUNCTIONS[name](net, params, X[0], np.zeros(4))


# ---- params ----------------------------------------------------------------------------------


def test_V_W_mismatch():
    net, params = make()
    bad = params._replace(W=jnp.zeros((3, 5)))
    msg = "params.W has 5 columns but params.V has M=4 rows.*W must be \\(K, M\\)"
    with pytest.raises(ValueError, match=msg):
        jaxbp.forward(net, bad, X)
    with pytest.raises(ValueError, match=msg):
        jaxbp.batch_grad(net, bad, X, Y)


def test_V_and_W_must_be_matrices():
    net, params = make()
    with pytest.raises(
        ValueError, match=re.escape("params.V must be a matrix (M, d), got shape (12,)")
    ):
        jaxbp.forward(net, params._replace(V=jnp.zeros(12)), X)
    with pytest.raises(
        ValueError, match=re.escape("params.W must be a matrix (K, M), got shape (3, 4, 1)")
    ):
        jaxbp.forward(net, params._replace(W=jnp.zeros((3, 4, 1))), X)


def test_offset_shapes():
    net, params = make(bias=True)
    with pytest.raises(ValueError, match=re.escape("params.b must have shape (4,), got (3,)")):
        jaxbp.forward(net, params._replace(b=jnp.zeros(3)), X)
    with pytest.raises(ValueError, match=re.escape("params.c must have shape (3,), got (3, 1)")):
        jaxbp.manual_grad(net, params._replace(c=jnp.zeros((3, 1))), X[0], Y[0])
    with pytest.raises(ValueError, match=re.escape("params.b must have shape (4,), got (4, 1)")):
        jaxbp.batch_grad(net, params._replace(b=jnp.zeros((4, 1))), X, Y)


def test_params_must_be_params():
    net, params = make()
    for bad in ({"V": params.V, "W": params.W}, (params.V, params.W), None):
        with pytest.raises(TypeError, match=re.escape("params must be a jaxbp.Params")):
            jaxbp.forward(net, bad, X)
    with pytest.raises(TypeError, match=re.escape("params.V must be an array, got list")):
        jaxbp.forward(net, params._replace(V=[[0.0] * D] * M), X)


# ---- net configuration -----------------------------------------------------------------------


def test_unknown_activation():
    with pytest.raises(
        ValueError, match="unknown activation 'relux'; expected one of sigmoid, relu"
    ):
        jaxbp.Net(activation="relux")
    with pytest.raises(TypeError, match=r"activation must be a name \(str\), got "):
        jaxbp.Net(activation=jax.nn.relu)


def test_unknown_head():
    with pytest.raises(
        ValueError, match="unknown head 'hinge'; expected one of squared, logistic, softmax"
    ):
        jaxbp.Net(head="hinge")


def test_unknown_output_map_names_output():
    """The argument at fault is output=, and the message should say so."""
    with pytest.raises(ValueError, match="output") as err:
        jaxbp.Net(activation="relu", head="squared", output="sofmax")
    assert "sofmax" in str(err.value) and "identity" in str(err.value)


@pytest.mark.parametrize("head", ["logistic", "softmax"])
def test_output_with_classification_head(head):
    msg = (
        f"output='sigmoid' was given, but the {head} head's output map is fixed; "
        "output= applies to head='squared' only"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        jaxbp.Net(head=head, output="sigmoid")


def test_head_width_at_init_and_with_hand_made_params():
    with pytest.raises(ValueError, match="head='logistic' needs K=1 output, but out=2"):
        make("logistic", 2)
    with pytest.raises(ValueError, match="head='softmax' needs K>=2 outputs, but out=1"):
        make("softmax", 1)
    logistic = jaxbp.Net(head="logistic")
    two = jaxbp.Params(jnp.zeros((M, D)), jnp.zeros((2, M)))
    with pytest.raises(
        ValueError, match=re.escape("head='logistic' needs K=1 output, but params.W.shape[0]=2")
    ):
        jaxbp.forward(logistic, two, X)
    softmax = jaxbp.Net(head="softmax")
    one = jaxbp.Params(jnp.zeros((M, D)), jnp.zeros((1, M)))
    with pytest.raises(
        ValueError, match=re.escape("head='softmax' needs K>=2 outputs, but params.W.shape[0]=1")
    ):
        jaxbp.batch_grad(softmax, one, X, np.zeros(N, np.int32))


# ---- labels --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [3, -1])
def test_class_ids_out_of_range(bad):
    net, params = make("softmax")
    ids = np.array([0, 1, bad, 0, 1])
    msg = f"Y holds class id {bad}, but the softmax head has K=3 classes"
    with pytest.raises(ValueError, match=msg):
        jaxbp.batch_grad(net, params, X, ids)
    with pytest.raises(ValueError, match=msg):
        jaxbp.check_data(net, params, X, ids)
    with pytest.raises(ValueError, match=f"y holds class id {bad}"):
        jaxbp.manual_grad(net, params, X[0], np.int32(bad))


def test_float_compact_labels_for_softmax():
    net, params = make("softmax")
    msg = re.escape(
        "Y of shape (5,) must hold integer class ids for head='softmax', got dtype float32"
    )
    with pytest.raises(TypeError, match=msg):
        jaxbp.loss(net, params, X, IDS.astype(np.float32))
    with pytest.raises(TypeError, match=r"y of shape \(\) must hold integer class ids"):
        jaxbp.manual_grad(net, params, X[0], np.float32(1.0))


def test_logistic_labels_must_be_plus_minus_one():
    net, params = make("logistic")
    msg = r"Y must hold labels \+1 or -1 for head='logistic', found .*"
    msg += r"0/1 labels\? map them with 2\*y - 1"
    with pytest.raises(ValueError, match=msg):
        jaxbp.batch_grad(net, params, X, np.array([1, 0, 1, 1, 0]))
    with pytest.raises(
        ValueError, match=r"Y must hold labels \+1 or -1 for head='logistic', found .*0.5"
    ):
        jaxbp.loss(net, params, X, np.full((N, 1), 0.5))


def test_non_numeric_inputs():
    net, params = make()
    with pytest.raises(TypeError, match="x must be a numeric array, got "):
        jaxbp.forward(net, params, "abc")
    with pytest.raises(TypeError, match="x must be a numeric array, got dtype <U1"):
        jaxbp.forward(net, params, np.array(["a", "b", "c"]))
    with pytest.raises(TypeError, match="X must be a numeric array"):
        jaxbp.batch_grad(net, params, np.array([[object()] * D] * N), Y)
    with pytest.raises(TypeError, match="Y must be a numeric array, got dtype <U1"):
        jaxbp.loss(net, params, X, np.array(["a"] * N))


def test_none_input_is_a_type_error_naming_x():
    net, params = make()
    with pytest.raises(TypeError, match="x must be a numeric array"):
        jaxbp.forward(net, params, None)


# ---- check_data ----------------------------------------------------------------------------


def test_check_data_accepts_good_data():
    for head, labels in (
        ("softmax", Y),
        ("softmax", IDS),
        ("logistic", np.array([1, -1, 1, 1, -1])),
    ):
        net, params = make(head)
        assert jaxbp.check_data(net, params, X, labels) is None
    net, params = make("softmax")
    probs = np.full((N, 3), 1 / 3, np.float32)
    assert jaxbp.check_data(net, params, X, probs) is None


def test_check_data_logistic_labels():
    """The offending label is shown as a number, as in check_data's docstring example."""
    net, params = make("logistic")
    msg = re.escape("Y must hold labels +1 or -1 for head='logistic', found 0 (0/1 labels? ")
    with pytest.raises(ValueError, match=msg):
        jaxbp.check_data(net, params, X, np.array([1, -1, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"found 2$"):
        jaxbp.check_data(net, params, X, np.array([[1], [2], [1], [1], [1]]))


def test_check_data_one_hot_rows():
    net, params = make("softmax")
    bad = Y.copy()
    bad[1] = [1, 1, 0]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Y row 1 is not a one-hot (or probability) row summing to 1: [1.0, 1.0, 0.0]"
        ),
    ):
        jaxbp.check_data(net, params, X, bad)
    bad = Y.copy()
    bad[3] = [1.5, -0.5, 0]  # sums to 1, but negative
    with pytest.raises(ValueError, match="Y row 3 is not a one-hot"):
        jaxbp.check_data(net, params, X, bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_check_data_non_finite(value):
    net, params = make("squared")
    Xbad = X.copy()
    Xbad[2, 1] = value
    with pytest.raises(ValueError, match=re.escape("X holds NaN or inf (first at index (2, 1))")):
        jaxbp.check_data(net, params, Xbad, np.zeros((N, 2)))
    Ybad = np.zeros((N, 2))
    Ybad[4, 0] = value
    with pytest.raises(ValueError, match=re.escape("Y holds NaN or inf (first at index (4, 0))")):
        jaxbp.check_data(net, params, X, Ybad)


def test_check_data_empty():
    net, params = make("squared")
    with pytest.raises(
        ValueError, match=re.escape("X is empty (shape (0, 3)); need at least one sample")
    ):
        jaxbp.check_data(net, params, np.zeros((0, D)), np.zeros((0, 2)))


def test_check_data_runs_the_shape_checks():
    net, params = make("squared")
    with pytest.raises(ValueError, match="X has 4 features but V expects d=3"):
        jaxbp.check_data(net, params, np.zeros((N, 4)), np.zeros((N, 2)))
    with pytest.raises(ValueError, match="X must have a batch of shape"):
        jaxbp.check_data(net, params, np.zeros(D), np.zeros(2))


# ---- under jax.jit: the same errors, at trace time -----------------------------------------


def test_shape_errors_under_jit():
    net, params = make("softmax", bias=True)
    with pytest.raises(ValueError, match="x has 5 features but V expects d=3"):
        jax.jit(jaxbp.manual_grad)(net, params, jnp.zeros(5), jnp.asarray(Y[0]))
    with pytest.raises(ValueError, match="y has 4 outputs per sample but W gives K=3"):
        jax.jit(jaxbp.manual_grad)(net, params, jnp.zeros(D), jnp.zeros(4))
    with pytest.raises(ValueError, match="X has 2 features but V expects d=3"):
        jax.jit(jaxbp.batch_grad)(net, params, jnp.zeros((N, 2)), jnp.asarray(Y))
    with pytest.raises(ValueError, match=r"x must have shape \(d,\) or \(n, d\)"):
        jax.jit(jaxbp.forward)(net, params, jnp.zeros((1, 1, D)))
    with pytest.raises(ValueError, match=r"params.b must have shape \(4,\)"):
        jax.jit(jaxbp.loss)(net, params._replace(b=jnp.zeros(2)), jnp.asarray(X), jnp.asarray(Y))
    with pytest.raises(ValueError, match="X has n=5 samples but Y has 3"):
        jax.jit(jaxbp.per_sample_grad_norms)(net, params, jnp.asarray(X), jnp.asarray(Y[:3]))
    with pytest.raises(TypeError, match=r"Y of shape \(5,\) must hold integer class ids"):
        jax.jit(jaxbp.loss)(net, params, jnp.asarray(X), jnp.zeros(N))


def test_label_values_are_not_checked_under_jit():
    """Documented: under jit label values are unknown, so only check_data (eager) catches them."""
    net, params = make("logistic")
    labels = jnp.array([1.0, 0.0, 1.0, 1.0, -1.0])
    loss = jax.jit(jaxbp.loss)(net, params, jnp.asarray(X), labels)
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match=r"must hold labels \+1 or -1"):
        jaxbp.check_data(net, params, X, labels)


# --- Runs you can trust: dtypes, empty batches and net at the boundary ----------------


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        (X.astype(np.complex64) + 1j, "complex"),
        (X > 0, "bool"),
        (X.astype(object), "dtype object"),
    ],
)
@pytest.mark.parametrize("fn", [jaxbp.forward, jaxbp.predict, jaxbp.class_probabilities])
def test_non_real_inputs_are_refused(fn, bad, word):
    net, params = make()
    with pytest.raises(TypeError, match=rf"^(x|X) must be a .*{word}"):
        fn(net, params, bad)


@pytest.mark.parametrize("name", list(BATCH_FUNCTIONS))
def test_complex_X_is_refused_by_every_batch_function(name):
    net, params = make()
    with pytest.raises(TypeError, match="X must be a real numeric array, got dtype complex64"):
        BATCH_FUNCTIONS[name](net, params, X.astype(np.complex64), Y)


def test_complex_and_boolean_targets_are_refused():
    net, params = make("squared")
    with pytest.raises(TypeError, match="Y must be a real numeric array"):
        jaxbp.loss(net, params, X, np.ones((N, 2), np.complex64))
    with pytest.raises(TypeError, match=r"Y must be a numeric array .* got dtype bool"):
        jaxbp.loss(net, params, X, np.ones((N, 2), bool))


@pytest.mark.parametrize("field", ["V", "W", "b", "c"])
def test_non_floating_params_are_refused_naming_the_field(field):
    net, params = make(bias=True)
    bad = params._replace(**{field: getattr(params, field).astype(jnp.int32)})
    with pytest.raises(TypeError, match=rf"params\.{field} must be a floating-point array"):
        jaxbp.forward(net, bad, X)
    with pytest.raises(TypeError, match=rf"params\.{field} must be a floating-point array"):
        jaxbp.loss(net, bad, X, Y)


@pytest.mark.parametrize("method", ["matrix", "vmap", "autodiff"])
def test_empty_batch_is_refused_by_batch_grad(method):
    net, params = make()
    with pytest.raises(ValueError, match=r"X is empty \(shape \(0, 3\)\)"):
        jaxbp.batch_grad(net, params, X[:0], IDS[:0], method=method)


@pytest.mark.parametrize(
    "fn", [jaxbp.loss, jaxbp.autodiff_grad, jax.jit(jaxbp.loss), jaxbp.gradcheck]
)
def test_empty_batch_is_refused_where_a_mean_is_taken(fn):
    net, params = make()
    with pytest.raises(ValueError, match="X is empty"):
        fn(net, params, X[:0], IDS[:0])


@pytest.mark.parametrize("bad", [None, "relu", 3])
@pytest.mark.parametrize(
    "call",
    [
        lambda net, p: jaxbp.forward(net, p, X),
        lambda net, p: jaxbp.predict(net, p, X),
        lambda net, p: jaxbp.loss(net, p, X, Y),
        lambda net, p: jaxbp.batch_grad(net, p, X, Y),
        lambda net, p: jaxbp.per_sample_grad_norms(net, p, X, Y),
        lambda net, p: jaxbp.check_data(net, p, X, Y),
        lambda net, p: jaxbp.evaluate(net, p, X, Y),
    ],
)
def test_a_non_net_is_a_type_error_naming_net(call, bad):
    _, params = make()
    with pytest.raises(TypeError, match=r"net must be a jaxbp\.Net"):
        call(bad, params)


@pytest.mark.parametrize(
    ("eps", "error"),
    [(0.0, ValueError), (-1e-6, ValueError), (np.nan, ValueError), ("a", TypeError)],
)
def test_gradcheck_refuses_bad_eps(eps, error):
    net, params = make()
    with pytest.raises(error, match="eps must be"):
        jaxbp.gradcheck(net, params, X, IDS, eps=eps)


def test_gradcheck_refuses_integer_params_instead_of_casting():
    net, params = make()
    with pytest.raises(TypeError, match=r"params\.V must be a floating-point array"):
        jaxbp.gradcheck(net, jax.tree.map(lambda a: a.astype(int), params), X, IDS)
