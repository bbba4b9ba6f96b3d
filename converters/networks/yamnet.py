"""YAMNet rebuilt in Keras 2 (tf_keras), front end included, so the upstream yamnet.h5 loads by name.

The graph is upstream's `yamnet_frames_model` for a fixed number of samples: end padding to
15600 + k * 7680 samples, STFT (frame 400, hop 160, FFT 512, periodic Hann, no centre padding),
magnitude, 64 mel bands 125-7500 Hz (tf.signal.linear_to_mel_weight_matrix), log(mel + 0.001),
patches of 96 frames every 48, then the MobileNet-v1 body with upstream layer names
(`layer{i}/conv`, `layer{i}/depthwise_conv/bn`, ..., `logits`). A fixed length keeps every shape
static, which both ONNX and OpenVINO need for a clean export.

TensorFlow is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.plugins import register_network

SAMPLE_RATE = 16000
STFT_WINDOW = 400  # 25 ms
STFT_HOP = 160  # 10 ms
FFT_LENGTH = 512
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
BN_EPSILON = 1e-4

#: samples for one patch: 95 hops plus one STFT window (0.975 s)
MIN_SAMPLES = (PATCH_FRAMES - 1) * STFT_HOP + STFT_WINDOW
PATCH_HOP_SAMPLES = PATCH_HOP_FRAMES * STFT_HOP

#: (kind, stride, filters) of layer1 .. layer14, all 3x3 kernels, 'same' padding
LAYER_DEFS = (
    ("conv", 2, 32),
    ("separable", 1, 64),
    ("separable", 2, 128),
    ("separable", 1, 128),
    ("separable", 2, 256),
    ("separable", 1, 256),
    ("separable", 2, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 2, 1024),
    ("separable", 1, 1024),
)


@dataclass(frozen=True)
class Geometry:
    """Sizes that follow from the waveform length, as upstream's pad_waveform computes them."""

    samples: int
    padded_samples: int
    frames: int
    patches: int


def geometry(samples: int) -> Geometry:
    """Upstream pads to at least MIN_SAMPLES, then up to a whole number of patch hops."""
    if samples <= 0:
        raise ValueError(f"the waveform needs at least one sample, got {samples}")
    padded = max(samples, MIN_SAMPLES)
    after_first = padded - MIN_SAMPLES
    hops = -(-after_first // PATCH_HOP_SAMPLES)
    padded = MIN_SAMPLES + hops * PATCH_HOP_SAMPLES
    frames = 1 + (padded - STFT_WINDOW) // STFT_HOP
    patches = 1 + (frames - PATCH_FRAMES) // PATCH_HOP_FRAMES
    return Geometry(samples, padded, frames, patches)


def _keras() -> Any:
    """tf_keras (Keras 2), after TensorFlow's start-up noise is silenced; it ships no type information."""
    from converters import quiet_tensorflow

    quiet_tensorflow()
    import tf_keras

    return tf_keras


def log_mel_patches(waveform: Any, samples: int) -> tuple[Any, Any]:
    """Upstream's features: (log-mel spectrogram [frames, 64], patches [patches, 96, 64])."""
    import tensorflow as tf

    geo = geometry(samples)
    padded = (
        tf.pad(waveform, [[0, geo.padded_samples - samples]]) if geo.padded_samples > samples else waveform
    )
    magnitude = tf.abs(
        tf.signal.stft(padded, frame_length=STFT_WINDOW, frame_step=STFT_HOP, fft_length=FFT_LENGTH)
    )
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=MEL_BANDS,
        num_spectrogram_bins=FFT_LENGTH // 2 + 1,
        sample_rate=SAMPLE_RATE,
        lower_edge_hertz=MEL_MIN_HZ,
        upper_edge_hertz=MEL_MAX_HZ,
        dtype=magnitude.dtype,  # float32 as upstream; float64 in the float64 evaluation (zoo.numerics)
    )
    log_mel = tf.math.log(tf.matmul(magnitude, mel_matrix) + LOG_OFFSET)
    patches = tf.signal.frame(log_mel, frame_length=PATCH_FRAMES, frame_step=PATCH_HOP_FRAMES, axis=0)
    return log_mel, patches


def _front_end_layer(samples: int) -> Any:
    keras = _keras()
    layer_base: Any = keras.layers.Layer

    class LogMelPatches(layer_base):
        """The log-mel front end as one weightless layer (upstream used loose TF ops)."""

        def call(self, waveform: Any) -> tuple[Any, Any]:
            return log_mel_patches(waveform, samples)

    return LogMelPatches(name="log_mel_features")


def body_layers(num_classes: int = 521) -> list[Any]:
    """The CNN as an ordered list of Keras layers with upstream names (front end excluded)."""
    keras = _keras()
    layers = keras.layers

    def bn(name: str) -> Any:
        return layers.BatchNormalization(name=name, center=True, scale=False, epsilon=BN_EPSILON)

    stack = [layers.Reshape((PATCH_FRAMES, MEL_BANDS, 1), name="reshape")]
    for index, (kind, stride, filters) in enumerate(LAYER_DEFS, start=1):
        name = f"layer{index}"
        if kind == "conv":
            stack += [
                layers.Conv2D(
                    filters, (3, 3), strides=stride, padding="same", use_bias=False, name=f"{name}/conv"
                ),
                bn(f"{name}/conv/bn"),
                layers.ReLU(name=f"{name}/relu"),
            ]
        else:
            stack += [
                layers.DepthwiseConv2D(
                    (3, 3),
                    strides=stride,
                    depth_multiplier=1,
                    padding="same",
                    use_bias=False,
                    name=f"{name}/depthwise_conv",
                ),
                bn(f"{name}/depthwise_conv/bn"),
                layers.ReLU(name=f"{name}/depthwise_conv/relu"),
                layers.Conv2D(
                    filters, (1, 1), strides=1, padding="same", use_bias=False, name=f"{name}/pointwise_conv"
                ),
                bn(f"{name}/pointwise_conv/bn"),
                layers.ReLU(name=f"{name}/pointwise_conv/relu"),
            ]
    stack += [
        layers.GlobalAveragePooling2D(name="global_average_pooling2d"),
        layers.Dense(num_classes, use_bias=True, name="logits"),
    ]
    return stack


def build_frames_model(samples: int = MIN_SAMPLES, num_classes: int = 521) -> Any:
    """Waveform [samples] -> {scores [patches, C], embeddings [patches, 1024], log_mel_spectrogram [frames, 64]}."""
    keras = _keras()
    import tensorflow as tf

    waveform = keras.layers.Input(batch_shape=(samples,), dtype=tf.float32, name="waveform")
    log_mel, net = _front_end_layer(samples)(waveform)
    embeddings = None
    for layer in body_layers(num_classes):
        if layer.name == "logits":
            embeddings = net
        net = layer(net)
    scores = keras.layers.Activation("sigmoid", name="scores")(net)
    return keras.Model(
        name="yamnet_frames",
        inputs=waveform,
        outputs={"scores": scores, "embeddings": embeddings, "log_mel_spectrogram": log_mel},
    )


# -- seeded reference weights ----------------------------------------------------------------


def calibration_waveforms(seed: int, count: int = 16) -> np.ndarray:
    """Seeded clips that look like audio (tones, noise, bursts at several levels) for BN statistics."""
    rng = np.random.RandomState(seed)
    t = np.arange(MIN_SAMPLES) / SAMPLE_RATE
    clips = []
    for index in range(count):
        level = 10 ** rng.uniform(-2.5, -0.3)
        kind = index % 4
        if kind == 0:
            clip = rng.standard_normal(MIN_SAMPLES)
        elif kind == 1:
            freq = rng.uniform(100, 6000)
            clip = np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(MIN_SAMPLES)
        elif kind == 2:
            clip = np.cumsum(rng.standard_normal(MIN_SAMPLES))
            clip -= np.convolve(clip, np.ones(64) / 64, mode="same")
        else:
            envelope = (rng.uniform(size=MIN_SAMPLES // 800 + 1) > 0.6).repeat(800)[:MIN_SAMPLES]
            clip = envelope * rng.standard_normal(MIN_SAMPLES)
        clip = clip / (np.max(np.abs(clip)) + 1e-9) * level
        clips.append(clip.astype(np.float32))
    return np.stack(clips)


#: layers after this one start near the identity (see set_reference_weights)
RANDOM_LAYERS = 5


def _identity_mix(cin: int, cout: int) -> np.ndarray:
    """A 1x1 kernel that passes channel j % cin through, with alternating signs when channels grow."""
    kernel = np.zeros((cin, cout))
    for j in range(cout):
        kernel[j % cin, j] = 1.0 if (j // cin) % 2 == 0 else -1.0
    return kernel


def set_reference_weights(model: Any, seed: int) -> None:
    """Seeded weights that behave like a trained network's: bounded activations, not chaotic.

    Layers 1-5 get He-normal kernels; layers 6-14 start near the identity (centre-tap depthwise
    kernels and identity-like pointwise kernels, each with seeded noise), as deep layers of a
    trained MobileNet tend to. A fully random 14-layer net amplifies a 1e-3 change of its input
    into logit changes of ~0.3, which would make float32 parity checks meaningless; this one
    stays near 0.1 while still ranking different sounds differently. BatchNorm statistics are
    measured on seeded audio, layer by layer, so every layer sees unit-variance inputs, and the
    logit scale is set from the same audio (std ~1.5, sigmoid biases around -2).
    """
    import tensorflow as tf

    keras = _keras()
    rng = np.random.RandomState(seed)
    front = model.get_layer("log_mel_features")
    patches = np.concatenate(
        [front(tf.constant(clip))[1].numpy() for clip in calibration_waveforms(seed, 16)]
    )
    x = tf.constant(patches)
    for layer in model.layers:
        if layer is front or isinstance(layer, keras.layers.InputLayer) or layer.name == "scores":
            continue
        index = int(layer.name.split("/")[0][len("layer") :]) if layer.name.startswith("layer") else 0
        near_identity = index > RANDOM_LAYERS
        if layer.name == "logits":
            values = x.numpy()
            kernel = rng.standard_normal((values.shape[-1], layer.units))
            kernel *= 1.5 / (values @ kernel).std()
            bias = -(values @ kernel).mean(axis=0) + rng.normal(-2.0, 0.75, size=layer.units)
            layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
            continue
        if layer.name.endswith("/bn"):
            values = x.numpy()
            mean = values.mean(axis=(0, 1, 2))
            var = values.var(axis=(0, 1, 2)) + 1e-3
            beta = rng.normal(0.0, 0.1, size=mean.shape)
            layer.set_weights([beta.astype(np.float32), mean.astype(np.float32), var.astype(np.float32)])
        elif layer.weights:
            shape = layer.get_weights()[0].shape
            if "depthwise" in layer.name:
                if near_identity:
                    kernel = rng.standard_normal(shape) * 0.1
                    kernel[1, 1] += 1.0
                else:
                    kernel = rng.standard_normal(shape) * np.sqrt(2.0 / 9)
            elif "pointwise" in layer.name:
                cin, cout = shape[2], shape[3]
                kernel = rng.standard_normal((cin, cout)) * np.sqrt(2.0 / cin)
                if near_identity:
                    kernel = 0.85 * _identity_mix(cin, cout) + 0.15 * kernel
                kernel = kernel[None, None]
            else:
                kernel = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
            layer.set_weights([kernel.astype(np.float32)])
        x = layer(x)


@register_network("yamnet", framework="keras")
class Yamnet:
    """YAMNet as the keras converter uses it (zoo.plugins.KerasNetwork)."""

    build_frames_model = staticmethod(build_frames_model)
    set_reference_weights = staticmethod(set_reference_weights)
