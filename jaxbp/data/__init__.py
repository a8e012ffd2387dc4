"""Data sets: the embedded digits, synthetic problems drawn with ``jax.random``, and user files.

Every loader returns a :class:`Dataset`: a fixed train/test split (stratified for
classification) whose inputs are standardised with a mean and std fitted on the
train part only,

    X ← (X − mean_train) / std_train      (constant features: std taken as 1, so they become 0)

and labels ready for a head: class ids 0..C−1 (int64) for ``softmax``, floats (n,)
or (n, K) for ``squared``. The scaler is kept, so new inputs are transformed the
same way (:meth:`Dataset.transform`).

Sources:

- ``digits``: scikit-learn's 8×8 digits (1797 × 64, 10 classes), shipped with jaxbp.
- ``moons``, ``circles``, ``spirals``, ``xor``, ``blobs``: 2-D classification.
- ``sine`` (and any g via :func:`regression_1d`): 1-D regression y = g(x) + noise.
- ``teacher``: regression on the outputs of a random two-layer teacher network.
- :func:`from_csv`, :func:`from_npz`: your own data; :func:`load` picks by name or path.

Problems a user can fix (missing file, unknown column, non-numeric cell, a single
class...) raise :class:`DataError`, whose message says what was expected and where.

Modules: ``dataset`` (Dataset, DataError, split and scaler), ``synthetic`` (digits and
the generators), ``files`` (CSV and NPZ readers), ``loading`` (:func:`load`). Every
public name is available here, as ``jaxbp.data.NAME``. scikit-learn is imported only
when it is needed (splitting a synthetic set or a file), so ``import jaxbp.data`` and
loading digits stay fast.

Example:
    >>> import jax
    >>> from jaxbp import data
    >>> ds = data.moons(jax.random.key(0), n=100)
    >>> ds.X_train.shape, ds.y_train.shape, ds.n_classes
    ((80, 2), (80,), 2)
"""

from jaxbp.data.dataset import (
    MIN_SAMPLES,
    TEST_FRACTION,
    DataError,
    Dataset,
    fit_scaler,
    make_dataset,
    standardise,
    unstandardise,
)
from jaxbp.data.files import (
    MAX_CLASSES,
    csv_columns,
    from_csv,
    from_npz,
    read_column,
    read_features,
    read_labelled,
)
from jaxbp.data.loading import load
from jaxbp.data.synthetic import (
    NAMES,
    SYNTHETIC,
    blobs,
    circles,
    digits,
    moons,
    regression_1d,
    sine,
    spirals,
    teacher,
    teacher_net,
    xor,
)

__all__ = [
    "MAX_CLASSES",
    "MIN_SAMPLES",
    "NAMES",
    "SYNTHETIC",
    "TEST_FRACTION",
    "DataError",
    "Dataset",
    "blobs",
    "circles",
    "csv_columns",
    "digits",
    "fit_scaler",
    "from_csv",
    "from_npz",
    "load",
    "make_dataset",
    "moons",
    "read_column",
    "read_features",
    "read_labelled",
    "regression_1d",
    "sine",
    "spirals",
    "standardise",
    "teacher",
    "teacher_net",
    "unstandardise",
    "xor",
]
