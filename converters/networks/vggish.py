"""VGGish (tensorflow/models research/audioset/vggish) rebuilt as a tf.compat.v1 graph, upstream names.

Upstream defines the network with TF-Slim in `vggish_slim.define_vggish_slim`; tf_slim is not
needed to rebuild it: every layer is one variable scope holding `weights` and `biases`, so the
real `vggish_model.ckpt` (a V1 single-file checkpoint) restores by name with a plain Saver.

    vggish/input_features   placeholder [batch, 96, 64] log-mel patches (0.96 s)
    conv1 (64) pool1, conv2 (128) pool2, conv3/conv3_1, conv3/conv3_2 (256) pool3,
    conv4/conv4_1, conv4/conv4_2 (512) pool4      3x3 convolutions, stride 1, SAME, ReLU;
                                                  2x2 max-pools, stride 2, SAME
    flatten (6 x 4 x 512 = 12288, NHWC order), fc1/fc1_1, fc1/fc1_2 (4096, ReLU),
    fc2 (128, no activation) -> vggish/embedding   [batch, 128]

Variables are `vggish/<scope>/weights` and `vggish/<scope>/biases` (72,141,184 parameters).
Reference weights: He-normal draws (a trained network's activations neither vanish nor explode
through 8 layers, which upstream's N(0, 0.01) initialiser would give), small biases, and a PCA
whitening fitted on seeded inputs, so the postprocessor's clip and 8-bit quantization see values
spread over their range as the real ones are. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.composite.postprocess import EIGEN_VECTORS, MEANS
from zoo.plugins import register_network

NUM_FRAMES = 96
NUM_BANDS = 64
EMBEDDING_SIZE = 128
INPUT_OP = "vggish/input_features"
OUTPUT_OP = "vggish/embedding"
INPUT_TENSOR = INPUT_OP + ":0"
OUTPUT_TENSOR = OUTPUT_OP + ":0"
CHECKPOINT_NAME = "vggish_model.ckpt"
PCA_PARAMS_NAME = "vggish_pca_params.npz"
#: typical size of a reference PCA component: codes spread over the 8-bit range without saturating
PCA_SPREAD = 0.5

#: (scope under vggish/, kind, output channels); pools have no variables
LAYERS: tuple[tuple[str, str, int], ...] = (
    ("conv1", "conv", 64),
    ("pool1", "pool", 0),
    ("conv2", "conv", 128),
    ("pool2", "pool", 0),
    ("conv3/conv3_1", "conv", 256),
    ("conv3/conv3_2", "conv", 256),
    ("pool3", "pool", 0),
    ("conv4/conv4_1", "conv", 512),
    ("conv4/conv4_2", "conv", 512),
    ("pool4", "pool", 0),
    ("fc1/fc1_1", "fc", 4096),
    ("fc1/fc1_2", "fc", 4096),
    ("fc2", "embedding", EMBEDDING_SIZE),
)


def variable_shapes() -> dict[str, tuple[int, ...]]:
    """{upstream variable name: shape} of every VGGish variable, in layer order."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels, height, width = 1, NUM_FRAMES, NUM_BANDS
    flat = 0
    for scope, kind, out in LAYERS:
        if kind == "pool":
            height, width = -(-height // 2), -(-width // 2)
            continue
        if kind == "conv":
            shapes[f"vggish/{scope}/weights"] = (3, 3, channels, out)
            channels = out
        else:
            fan_in = flat or height * width * channels
            shapes[f"vggish/{scope}/weights"] = (fan_in, out)
            flat = out
        shapes[f"vggish/{scope}/biases"] = (out,)
    return shapes


def build_graph(batch: int | None = None, dtype: str = "float32") -> tuple[Any, dict[str, Any]]:
    """A new tf.Graph holding VGGish as upstream names it; (graph, {variable name: variable}).

    *batch* None keeps upstream's unknown batch dimension; *dtype* "float64" builds the same graph
    in double precision (the yardstick of zoo.numerics).
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    precision = tf.as_dtype(dtype)
    graph = tf.Graph()
    variables: dict[str, Any] = {}
    with graph.as_default(), v1.variable_scope("vggish"):
        features = v1.placeholder(precision, shape=(batch, NUM_FRAMES, NUM_BANDS), name="input_features")
        net = tf.reshape(features, [-1, NUM_FRAMES, NUM_BANDS, 1])
        shapes = variable_shapes()
        for scope, kind, _ in LAYERS:
            if kind == "pool":
                net = tf.nn.max_pool2d(net, ksize=2, strides=2, padding="SAME", name=f"{scope}/MaxPool")
                continue
            if kind != "conv" and len(net.shape) == 4:
                net = tf.reshape(net, [-1, int(np.prod(net.shape[1:]))], name="Flatten/flatten/Reshape")
            with v1.variable_scope(scope):
                weights = v1.get_variable(
                    "weights", shape=shapes[f"vggish/{scope}/weights"], dtype=precision, trainable=False
                )
                biases = v1.get_variable(
                    "biases", shape=shapes[f"vggish/{scope}/biases"], dtype=precision, trainable=False
                )
                variables[weights.op.name] = weights
                variables[biases.op.name] = biases
                if kind == "conv":
                    net = tf.nn.conv2d(net, weights, strides=1, padding="SAME")
                else:
                    net = tf.matmul(net, weights)
                net = tf.nn.bias_add(net, biases)
                if kind != "embedding":
                    net = tf.nn.relu(net)
        tf.identity(net, name="embedding")
    return graph, variables


def reference_variables(seed: int) -> dict[str, np.ndarray]:
    """Seeded weights for every variable: He-normal kernels, biases N(0, 0.01)."""
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for name, shape in variable_shapes().items():
        if name.endswith("/weights"):
            fan_in = int(np.prod(shape[:-1]))
            scale = np.sqrt(2.0 / fan_in) if not name.startswith("vggish/fc2/") else np.sqrt(1.0 / fan_in)
            values[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
        else:
            values[name] = (rng.standard_normal(shape) * 0.01).astype(np.float32)
    return values


def reference_pca(embeddings: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """PCA parameters in upstream's npz layout whitening *embeddings* (rows): a seeded rotation.

    `pca_eigen_vectors` [128, 128] (rows are components, as upstream premultiplies), `pca_means`
    [128]: (x - means) @ eigen_vectors.T has components of about PCA_SPREAD, so clipping to
    [-2, 2] and 8-bit quantization keep the signal, as with the real parameters.
    """
    rng = np.random.default_rng(seed + 1)
    data = np.asarray(embeddings, dtype=np.float64)
    means = data.mean(axis=0)
    rotation, _ = np.linalg.qr(rng.standard_normal((EMBEDDING_SIZE, EMBEDDING_SIZE)))
    spread = float(np.sqrt(np.mean((data - means) ** 2))) or 1.0
    # a rotation keeps the overall spread: components of about PCA_SPREAD, well inside [-2, 2]
    vectors = rotation.T * (PCA_SPREAD / spread)
    return {EIGEN_VECTORS: vectors.astype(np.float32), MEANS: means.astype(np.float32)}


def write_auxiliary(source: Any, manifest: Any, folder: Path, names: list[str], seed: int) -> dict[str, Path]:
    """The seeded `vggish_pca_params.npz` (upstream's keys), fitted on *source*'s embeddings of seeded audio.

    The audio is noise at levels from -40 to 0 dBFS and tones, cut into 0.96 s examples by the
    VGGish front end, so the whitening sees the spread of embeddings real inputs give.
    """
    from zoo.atomic import write_bytes
    from zoo.frontends.vggish import EXAMPLE_SAMPLES, SAMPLE_RATE, examples

    if PCA_PARAMS_NAME not in names:
        raise ValueError(f"the VGGish entry's auxiliary file must be {PCA_PARAMS_NAME}, got {names}.")
    rng = np.random.RandomState(seed)
    clips = []
    for level in (0.01, 0.03, 0.1, 0.3, 1.0):
        clips.append(rng.standard_normal(2 * EXAMPLE_SAMPLES) * level)
        time = np.arange(2 * EXAMPLE_SAMPLES) / SAMPLE_RATE
        clips.append(level * np.sin(2 * np.pi * rng.uniform(100, 4000) * time))
    name = manifest.inputs[0].name
    batch = np.concatenate([examples(clip.astype(np.float32)) for clip in clips])
    embeddings = np.concatenate(
        [source.run({name: example[None]})[manifest.outputs[0].name] for example in batch]
    )
    arrays = reference_pca(embeddings, seed)
    import io

    buffer = io.BytesIO()
    keyed: dict[str, Any] = {EIGEN_VECTORS: arrays[EIGEN_VECTORS], MEANS: arrays[MEANS]}
    np.savez(buffer, **keyed)  # upstream's keys, as zoo.composite.postprocess reads them
    target = Path(folder) / PCA_PARAMS_NAME
    write_bytes(target, buffer.getvalue())
    return {PCA_PARAMS_NAME: target}


@register_network("vggish", framework="tf1")
class Vggish:
    """What the tf1 converter asks of a rebuilt graph: build it, name its ends, seed its variables."""

    input_tensor = INPUT_TENSOR
    output_tensor = OUTPUT_TENSOR

    build_graph = staticmethod(build_graph)
    variable_shapes = staticmethod(variable_shapes)
    reference_variables = staticmethod(reference_variables)
    write_auxiliary = staticmethod(write_auxiliary)
