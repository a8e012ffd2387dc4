"""The names the command line offers, in a module that imports nothing.

``jaxbp --help`` and argument errors need only these lists, not JAX: the parser takes
its choices from here, and each registry (activations, heads, optimizers, gradients,
data) is built from or checked against the same tuple, so that the two cannot drift.
"""

ACTIVATIONS: tuple[str, ...] = (
    "sigmoid",
    "relu",
    "silu",
    "tanh",
    "identity",
    "softplus",
    "leaky_relu",
    "elu",
    "gelu",
    "gelu_exact",
)
HEADS: tuple[str, ...] = ("squared", "logistic", "softmax")
OUTPUT_MAP_HEADS: tuple[str, ...] = ("squared",)  # Head.takes_output_map: an output map h to pick
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "exponential", "inverse-time")
GRADIENT_METHODS: tuple[str, ...] = ("matrix", "vmap", "autodiff")
PLANE_DATA: tuple[str, ...] = ("moons", "circles", "spirals", "xor", "blobs")  # 2-D classification
SYNTHETIC_DATA: tuple[str, ...] = (*PLANE_DATA, "sine", "teacher")
DATA: tuple[str, ...] = ("digits", *SYNTHETIC_DATA)
