"""jaxbp.sklearn: BPClassifier and BPRegressor as scikit-learn estimators.

scikit-learn's own estimator checks on both; the tools a practitioner uses (Pipeline,
GridSearchCV in one and two processes, cross_val_score, clone, pickle, DataFrames,
set_params); labels, sample and class weights; and one full-batch SGD step equal to
MLPClassifier's own backprop from the same θ, with and without sample weights.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

import jaxbp
from jaxbp.sklearn import EXPECTED_FAILED_CHECKS, BPClassifier, BPRegressor

SMALL = dict(hidden=16, epochs=30, learning_rate=3e-2, batch_size=32, random_state=0)


@parametrize_with_checks(
    [BPClassifier(**SMALL), BPRegressor(**SMALL)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_expected_failures_have_reasons():
    assert EXPECTED_FAILED_CHECKS
    for name, reason in EXPECTED_FAILED_CHECKS.items():
        assert name.startswith("check_") and len(reason) > 40


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


def test_pipeline_learns_iris(iris):
    X, y = iris
    pipe = Pipeline([("scale", StandardScaler()), ("bp", BPClassifier(**SMALL))]).fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert pipe.predict_proba(X).shape == (150, 3)
    np.testing.assert_allclose(pipe.predict_proba(X).sum(1), 1, rtol=1e-6)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search(iris, n_jobs):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), BPClassifier(epochs=20, batch_size=32, random_state=0))
    grid = {"bpclassifier__hidden": [4, 16], "bpclassifier__learning_rate": [1e-3, 3e-2]}
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs).fit(X, y)
    assert search.best_params_ == {
        "bpclassifier__hidden": 16,
        "bpclassifier__learning_rate": 3e-2,
    }  # the wider, faster-learning net: 20 epochs of lr 1e-3 barely move θ
    assert search.best_score_ > 0.85
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_cross_val_score_and_clone(iris):
    X, y = iris
    est = make_pipeline(StandardScaler(), BPClassifier(**SMALL))
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    fitted = clone(est).fit(X, y)
    twin = clone(fitted)
    assert not hasattr(twin[-1], "params_")
    assert twin.get_params()["bpclassifier__hidden"] == 16
    np.testing.assert_array_equal(twin.fit(X, y).predict_proba(X), fitted.predict_proba(X))


def test_pickle_round_trip_predicts_the_same(iris):
    X, y = iris
    clf = BPClassifier(**SMALL).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    reg = BPRegressor(**SMALL).fit(X[:, :3], X[:, 3])
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(reg)).predict(X[:, :3]), reg.predict(X[:, :3])
    )


def test_dataframe_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    clf = BPClassifier(**SMALL).fit(frame, pd.Series(y))
    assert list(clf.feature_names_in_) == ["sl", "sw", "pl", "pw"]
    assert clf.n_features_in_ == 4
    with pytest.warns(UserWarning, match="feature names"):  # fitted with names, given none
        plain = clf.predict(X)
    np.testing.assert_array_equal(clf.predict(frame), plain)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"sl": "other"}))


def test_set_params_then_refit(iris):
    X, y = iris
    clf = BPClassifier(**SMALL).fit(X, y)
    assert clf.params_.V.shape == (16, 4)
    clf.set_params(hidden=5, activation="tanh").fit(X, y)
    assert clf.params_.V.shape == (5, 4)
    assert clf.net_.activation == "tanh"
    assert clf.get_params()["hidden"] == 5


@pytest.mark.parametrize(
    "labels", [["setosa", "versicolor", "virginica"], [3, -1, 10]], ids=["str", "int"]
)
def test_string_and_integer_labels(iris, labels):
    X, y = iris
    named = np.asarray(labels, dtype=object if isinstance(labels[0], str) else int)[y]
    clf = BPClassifier(**SMALL).fit(X, named)
    np.testing.assert_array_equal(clf.classes_, np.unique(named))
    assert set(clf.predict(X)) <= set(labels)
    assert clf.score(X, named) > 0.6
    # the same fit as with the class ids 0..2 ordered like classes_
    ids = np.searchsorted(np.unique(named), named)
    base = BPClassifier(**SMALL).fit(X, ids)
    np.testing.assert_array_equal(clf.predict_proba(X), base.predict_proba(X))


def test_binary_uses_the_logistic_head():
    X, y = make_classification(60, 4, random_state=0)
    labels = np.where(y == 1, "yes", "no")
    clf = BPClassifier(**SMALL).fit(X, labels)
    assert clf.net_.head == "logistic" and clf.params_.W.shape[0] == 1
    d = clf.decision_function(X)
    assert d.shape == (60,)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(d >= 0).astype(int)])
    soft = BPClassifier(head="softmax", **SMALL).fit(X, labels)
    assert soft.net_.head == "softmax" and soft.params_.W.shape[0] == 2
    assert soft.decision_function(X).shape == (60,)


def test_class_weight_balanced_is_the_balanced_sample_weight():
    X, y = make_classification(80, 4, weights=[0.8, 0.2], random_state=1)
    balanced = BPClassifier(class_weight="balanced", **SMALL).fit(X, y)
    explicit = BPClassifier(**SMALL).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    plain = BPClassifier(**SMALL).fit(X, y)
    np.testing.assert_array_equal(balanced.predict_proba(X), explicit.predict_proba(X))
    assert not np.allclose(balanced.predict_proba(X), plain.predict_proba(X))
    by_dict = BPClassifier(class_weight={0: 1.0, 1: 4.0}, **SMALL).fit(X, y)
    times = BPClassifier(**SMALL).fit(X, y, sample_weight=np.where(y == 1, 4.0, 1.0))
    np.testing.assert_array_equal(by_dict.predict_proba(X), times.predict_proba(X))


def test_sample_weight_errors_name_sample_weight(iris):
    X, y = iris
    for bad, message in [(-np.ones(150), ">= 0"), (np.zeros(150), "all zero")]:
        with pytest.raises(ValueError, match="sample_weight"):
            BPClassifier(**SMALL).fit(X, y, sample_weight=bad)
        assert message
    with pytest.raises(ValueError, match="sample_weight"):
        BPClassifier(**SMALL).fit(X, y, sample_weight=np.r_[np.nan, np.ones(149)])


def test_partial_fit_continues_theta_and_optimizer_state(iris):
    X, y = iris
    once = BPClassifier(**{**SMALL, "epochs": 2}).fit(X, y)
    steps = BPClassifier(**SMALL)
    steps.partial_fit(X, y, classes=np.unique(y))
    steps.partial_fit(X, y)
    assert steps.n_iter_ == 2 and len(steps.loss_curve_) == 2
    for a, b in zip(jax.tree.leaves(steps.params_), jax.tree.leaves(once.params_), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="classes"):
        BPClassifier(**SMALL).partial_fit(X, y)


def test_regressor_one_and_several_outputs():
    X, y = make_regression(80, 4, n_targets=2, noise=0.1, random_state=0)
    y = (y - y.mean(0)) / y.std(0)
    multi = BPRegressor(**{**SMALL, "epochs": 100}).fit(X, y)
    assert multi.predict(X).shape == (80, 2) and multi.score(X, y) > 0.9
    one = BPRegressor(**SMALL).fit(X, y[:, 0])
    assert one.predict(X).shape == (80,)
    w = np.r_[np.ones(40), np.zeros(40)]
    half = BPRegressor(**SMALL).fit(X, y[:, 0], sample_weight=w)
    first = BPRegressor(**{**SMALL, "batch_size": None}).fit(X[:40], y[:40, 0])
    half_full = BPRegressor(**{**SMALL, "batch_size": None}).fit(X, y[:, 0], sample_weight=w)
    np.testing.assert_allclose(half_full.predict(X), first.predict(X), rtol=1e-5, atol=1e-6)
    assert half.loss_curve_[-1] < half.loss_curve_[0]


def test_early_stopping_records_validation_scores(iris):
    X, y = iris
    clf = BPClassifier(early_stopping=True, n_iter_no_change=3, **SMALL).fit(X, y)
    assert len(clf.validation_scores_) == len(clf.loss_curve_) >= 1
    assert clf.status_ in ("completed", "early_stopped")
    assert BPClassifier(**SMALL).fit(X, y).validation_scores_ is None


def test_import_jaxbp_does_not_import_sklearn():
    code = "import sys, jaxbp; jaxbp.Net; jaxbp.fit; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _mlp_theta(mlp):
    """MLPClassifier's θ as jaxbp Params: V = coefs_[0]ᵀ, b = intercepts_[0], W, c likewise."""
    return jaxbp.Params(
        V=jnp.asarray(mlp.coefs_[0].T), W=jnp.asarray(mlp.coefs_[1].T),
        b=jnp.asarray(mlp.intercepts_[0]), c=jnp.asarray(mlp.intercepts_[1]),
    )  # fmt: skip


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_sgd_step_equals_mlpclassifier(classes, weighted):
    """Full-batch SGD, relu, biases, no regularisation: BPClassifier's step from MLPClassifier's
    θ equals MLPClassifier's own step (its backprop), to float64 rounding."""
    X, y = make_classification(
        50, 5, n_informative=3, n_classes=classes, n_clusters_per_class=1, random_state=2
    )
    s = np.random.default_rng(0).uniform(0, 3, 50) if weighted else None
    lr = 0.3
    mlp = MLPClassifier(
        hidden_layer_sizes=(7,), activation="relu", solver="sgd", alpha=0.0, batch_size=50,
        learning_rate_init=lr, momentum=0.0, nesterovs_momentum=False, shuffle=False,
        random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.partial_fit(X, y, classes=np.unique(y))  # initialise θ (and one step)
        theta = [a.copy() for a in (*mlp.coefs_, *mlp.intercepts_)]
        mlp.partial_fit(X, y, sample_weight=s)  # the step compared
    with jax.enable_x64(True):
        bp = BPClassifier(
            hidden=7, activation="relu", optimizer="sgd", learning_rate=lr, batch_size=None,
            bias=True, random_state=0,
        )  # fmt: skip
        bp.partial_fit(X, y, classes=np.unique(y), sample_weight=s)
        assert bp.params_.V.dtype == jnp.float64
        V, W, b, c = (jnp.asarray(a) for a in theta)
        theta = jaxbp.Params(V=V.T, W=W.T, b=b, c=c)
        bp.params_ = theta
        bp.partial_fit(X, y, sample_weight=s)
        got, want = bp.params_, _mlp_theta(mlp)
        for name in ("V", "W", "b", "c"):
            np.testing.assert_allclose(
                getattr(got, name), getattr(want, name), rtol=1e-12, atol=1e-14, err_msg=name
            )
        moved = np.abs(np.asarray(want.V) - np.asarray(theta.V)).max()
        assert moved > 1e-3  # the step is not trivially zero


def test_divergence_warns_and_keeps_finite_parameters():
    X = np.random.default_rng(0).normal(size=(40, 3)) * 1e4
    y = X[:, 0] > 0
    with pytest.warns(ConvergenceWarning, match="diverged"):
        clf = BPClassifier(optimizer="sgd", learning_rate=1e3, epochs=5, random_state=0).fit(X, y)
    assert clf.status_ == "diverged"
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(clf.params_))


def test_refits_reuse_the_compiled_epoch(iris):
    """Same settings and sizes: the second fit finds the compiled epoch in jaxbp's cache."""
    from jaxbp.train import compile_epoch

    X, y = iris
    BPClassifier(**SMALL).fit(X, y)
    before = compile_epoch.cache_info()
    clone(BPClassifier(**SMALL)).fit(X, y)
    after = compile_epoch.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


@pytest.mark.parametrize(
    ("class_weight", "match"),
    [({0: 0, 1: 0}, "all zero"), ({0: -1.0, 1: 1.0}, "finite weights >= 0")],
)
def test_bad_class_weights_are_refused(class_weight, match):
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        BPClassifier(class_weight=class_weight, epochs=1).fit(X, y)
