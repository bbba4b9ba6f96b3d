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

import os
from dataclasses import dataclass

import numpy as np

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
EMBEDDING_SIZE = 1024

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


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras

    return tf_keras


def log_mel_patches(waveform, samples: int):
    """Upstream's features: (log-mel spectrogram [frames, 64], patches [patches, 96, 64])."""
    import tensorflow as tf

    geo = geometry(samples)
    padded = tf.pad(waveform, [[0, geo.padded_samples - samples]]) if geo.padded_samples > samples else waveform
    magnitude = tf.abs(
        tf.signal.stft(padded, frame_length=STFT_WINDOW, frame_step=STFT_HOP, fft_length=FFT_LENGTH)
    )
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=MEL_BANDS,
        num_spectrogram_bins=FFT_LENGTH // 2 + 1,
        sample_rate=SAMPLE_RATE,
        lower_edge_hertz=MEL_MIN_HZ,
        upper_edge_hertz=MEL_MAX_HZ,
    )
    log_mel = tf.math.log(tf.matmul(magnitude, mel_matrix) + LOG_OFFSET)
    patches = tf.signal.frame(log_mel, frame_length=PATCH_FRAMES, frame_step=PATCH_HOP_FRAMES, axis=0)
    return log_mel, patches


def _front_end_layer(samples: int):
    keras = _keras()

    class LogMelPatches(keras.layers.Layer):
        """The log-mel front end as one weightless layer (upstream used loose TF ops)."""

        def call(self, waveform):
            return log_mel_patches(waveform, samples)

    return LogMelPatches(name="log_mel_features")


def body_layers(num_classes: int = 521) -> list:
    """The CNN as an ordered list of Keras layers with upstream names (front end excluded)."""
    keras = _keras()
    layers = keras.layers

    def bn(name):
        return layers.BatchNormalization(name=name, center=True, scale=False, epsilon=BN_EPSILON)

    stack = [layers.Reshape((PATCH_FRAMES, MEL_BANDS, 1), name="reshape")]
    for index, (kind, stride, filters) in enumerate(LAYER_DEFS, start=1):
        name = f"layer{index}"
        if kind == "conv":
            stack += [
                layers.Conv2D(filters, (3, 3), strides=stride, padding="same", use_bias=False, name=f"{name}/conv"),
                bn(f"{name}/conv/bn"),
                layers.ReLU(name=f"{name}/relu"),
            ]
        else:
            stack += [
                layers.DepthwiseConv2D(
                    (3, 3), strides=stride, depth_multiplier=1, padding="same", use_bias=False,
                    name=f"{name}/depthwise_conv",
                ),
                bn(f"{name}/depthwise_conv/bn"),
                layers.ReLU(name=f"{name}/depthwise_conv/relu"),
                layers.Conv2D(filters, (1, 1), strides=1, padding="same", use_bias=False, name=f"{name}/pointwise_conv"),
                bn(f"{name}/pointwise_conv/bn"),
                layers.ReLU(name=f"{name}/pointwise_conv/relu"),
            ]
    stack += [
        layers.GlobalAveragePooling2D(name="global_average_pooling2d"),
        layers.Dense(num_classes, use_bias=True, name="logits"),
    ]
    return stack


def build_frames_model(samples: int = MIN_SAMPLES, num_classes: int = 521):
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


def weighted_layers(model) -> list:
    return [layer for layer in model.layers if layer.weights]


# -- seeded reference weights ----------------------------------------------------------------


def calibration_waveforms(seed: int, count: int = 8) -> np.ndarray:
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


def set_reference_weights(model, seed: int) -> None:
    """Seeded He-normal kernels; BatchNorm statistics measured on seeded audio, layer by layer.

    Measuring the statistics keeps every layer's activations in a realistic range (unit variance
    before each ReLU), so the scores are spread between 0 and 1 instead of saturating, and parity
    checks on these weights mean something.
    """
    import tensorflow as tf

    keras = _keras()
    rng = np.random.RandomState(seed)
    front = model.get_layer("log_mel_features")
    batch = calibration_waveforms(seed)
    patches = np.concatenate([front(tf.constant(clip))[1].numpy() for clip in batch])
    x = tf.constant(patches)
    for layer in model.layers:
        if layer is front or isinstance(layer, keras.layers.InputLayer) or layer.name == "scores":
            continue
        if layer.name == "logits":
            kernel = rng.standard_normal((x.shape[-1], layer.units)).astype(np.float32)
            raw = x.numpy() @ kernel
            kernel /= raw.std(axis=0, keepdims=True) + 1e-6
            kernel *= 1.5
            centred = x.numpy() @ kernel
            bias = -centred.mean(axis=0) + rng.normal(-2.0, 0.75, size=layer.units)
            layer.set_weights([kernel, bias.astype(np.float32)])
            continue
        if layer.weights and "bn" not in layer.name:
            shapes = [w.shape for w in layer.get_weights()]
            kernel_shape = shapes[0]
            fan_in = int(np.prod(kernel_shape[:-1])) if "depthwise" not in layer.name else int(np.prod(kernel_shape[:2]))
            kernel = rng.standard_normal(kernel_shape).astype(np.float32) * np.sqrt(2.0 / fan_in)
            layer.set_weights([kernel])
        elif layer.name.endswith("/bn"):
            values = x.numpy()
            mean = values.mean(axis=(0, 1, 2))
            var = values.var(axis=(0, 1, 2)) + 1e-3
            beta = rng.normal(0.1, 0.2, size=mean.shape)
            layer.set_weights([beta.astype(np.float32), mean.astype(np.float32), var.astype(np.float32)])
        x = layer(x)
