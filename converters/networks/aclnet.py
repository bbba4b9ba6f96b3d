"""AclNet (Huang & Leanos, arXiv 1811.06669), rebuilt from the layer table of the published ONNX.

Upstream distributes only an ONNX export (batch norm already folded into the convolutions), so
this module is what makes AclNet-format reference files: `write_aclnet_reference` (FP32 ONNX named
like upstream) and `write_aclnet_int8_reference` (QDQ ONNX made with NNCF from the same network).

Choices where the published facts are silent: every convolution except the last 1x1 is followed by
batch norm and ReLU (depthwise ones included: the folded IR shows a bias on each); dropout is not
rebuilt (its placement is unknown and it does nothing at inference).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from converters.networks.seeding import calibrate_batchnorm, calibration_audio, scale_final_layer, seeded_init
from zoo.plugins import register_network

if TYPE_CHECKING:
    from zoo.manifest import Manifest


def conv_bn_relu(
    in_ch: int,
    out_ch: int,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    groups: int = 1,
) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            bn=nn.BatchNorm2d(out_ch),
            relu=nn.ReLU(),
        )
    )


class Separable(nn.Module):
    """Depthwise 3x3 (pad 1) then pointwise 1x1 with pad 1: the map grows by 2 in H and W."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.depthwise = conv_bn_relu(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.pointwise = conv_bn_relu(in_ch, out_ch, 1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.pointwise(self.depthwise(x))
        return y


@register_network("aclnet")
class AclNet(nn.Module):
    """Raw 16 kHz waveform [N, 1, 1, L] -> class probabilities [N, num_classes]."""

    def __init__(self, num_classes: int = 53):
        super().__init__()
        self.low_level = nn.Sequential(
            OrderedDict(
                conv1=conv_bn_relu(1, 64, (1, 33), stride=(1, 16), padding=(0, 16)),
                conv2=conv_bn_relu(64, 128, (1, 5), stride=(1, 2), padding=(0, 2)),
                pool=nn.MaxPool2d((1, 5), (1, 5)),
            )
        )
        blocks: list[tuple[str, nn.Module]] = [
            ("conv3", conv_bn_relu(1, 1, 3, padding=1)),
            ("conv4", conv_bn_relu(1, 64, 1, padding=1)),
            ("pool4", nn.MaxPool2d(2, 2)),
        ]
        channels = 64
        for stage, width in zip((5, 6, 7, 8), (128, 256, 512, 1024), strict=True):
            blocks += [
                (f"sep{stage}a", Separable(channels, width)),
                (f"sep{stage}b", Separable(width, width)),
                (f"pool{stage}", nn.MaxPool2d(2, 2)),
            ]
            channels = width
        self.high_level = nn.Sequential(OrderedDict(blocks))
        self.conv_out = nn.Conv2d(1024, 512, 1, bias=True)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.low_level(x)  # N, 128, 1, L/160
        x = x.permute(0, 2, 1, 3)  # N, 1, 128, L/160: channels become the image height
        x = self.high_level(x)
        x = self.conv_out(x)
        x = F.relu(x.mean(dim=(2, 3)))
        return F.softmax(self.fc(x), dim=1)


def fold_batchnorm(model: AclNet) -> nn.Module:
    """A copy with every conv + batch norm fused into one conv with a bias (as the published ONNX is)."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for parent in folded.modules():
        for name, child in list(parent.named_children()):
            conv = getattr(child, "conv", None)
            bn = getattr(child, "bn", None)
            if (
                isinstance(child, nn.Sequential)
                and isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.modules.batchnorm._BatchNorm)
            ):
                fused = nn.Sequential(
                    OrderedDict(conv=fuse_conv_bn_eval(conv, bn), relu=child.get_submodule("relu"))
                )
                setattr(parent, name, fused)
    return folded


def folded_parameter_count(model: AclNet) -> int:
    """Parameters as the published model counts them: BN folded, so each conv has weight + bias."""
    return sum(p.numel() for p in fold_batchnorm(model).parameters())


def layer_shapes(model: AclNet, samples: int = 16000) -> list[tuple[str, tuple[int, ...]]]:
    """(layer name, output C x H x W) in order, for checking against the published layer table."""
    shapes = []
    x = torch.zeros(1, 1, 1, samples)
    with torch.no_grad():
        for name, layer in model.low_level.named_children():
            x = layer(x)
            shapes.append((f"low_level.{name}", tuple(x.shape[1:])))
        x = x.permute(0, 2, 1, 3)
        shapes.append(("transpose", tuple(x.shape[1:])))
        for name, layer in model.high_level.named_children():
            x = layer(x)
            shapes.append((f"high_level.{name}", tuple(x.shape[1:])))
        x = model.conv_out(x)
        shapes.append(("conv_out", tuple(x.shape[1:])))
    return shapes


def seeded_aclnet(num_classes: int, seed: int) -> AclNet:
    """AclNet with seeded weights and batch-norm statistics measured on z-scored seeded audio."""
    from zoo.frontends.signal import zscore

    model = AclNet(num_classes).eval()
    seeded_init(model, seed)
    clips = calibration_audio(16000, 1.0, 24, seed)
    batch = torch.from_numpy(np.stack([zscore(c) for c in clips]).reshape(len(clips), 1, 1, 16000))
    calibrate_batchnorm(model, (batch,))
    scale_final_layer(model, model.fc, (batch,))
    return model


def export_onnx_bytes(
    model: nn.Module, input_name: str, output_name: str, samples: int = 16000, opset: int = 17
) -> bytes:
    """AclNet as ONNX bytes through the project's one exporter (BN folded, static [1, 1, 1, samples])."""
    from converters.pytorch import export_module_onnx

    return export_module_onnx(model, (torch.zeros(1, 1, 1, samples),), [input_name], [output_name], opset)


def write_reference_onnx(
    path: Path,
    *,
    seed: int,
    input_name: str = "input",
    output_name: str = "output",
    num_classes: int | None = 53,
    int8: bool = False,
    opset: int = 17,
    samples: int = 16000,
    subset_size: int = 32,
) -> Path:
    """Seeded AclNet written like the published file: FP32 ONNX, or QDQ INT8 ONNX made by nncf.quantize.

    The INT8 file is quantized from the same seeded network (same seed, same FP32 weights) with
    seeded z-scored calibration clips, as upstream's INT8 file was made from its FP32 one, with
    7-bit weights in every layer (NNCF's overflow fix for CPU targets): with 8-bit weights the
    seeded network's sums saturate on CPUs without VNNI, and the stand-in would then test the CPU
    rather than the conversion.
    """
    from zoo.atomic import write_bytes

    model = fold_batchnorm(seeded_aclnet(int(num_classes or 53), seed))
    data = export_onnx_bytes(model, input_name, output_name, samples, opset)
    if int8:
        import nncf
        import onnx

        from zoo.frontends.signal import zscore

        proto = onnx.load_from_string(data)
        clips = calibration_audio(16000, samples / 16000, subset_size, seed + 1)
        items = [{input_name: zscore(c).reshape(1, 1, 1, samples)} for c in clips]
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

        advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE)  # see the docstring
        data = nncf.quantize(
            proto, nncf.Dataset(items), subset_size=len(items), advanced_parameters=advanced
        ).SerializeToString()
    path = Path(path)
    write_bytes(path, data)
    return path


def _weights_file(manifest: Manifest) -> str:
    names = [f.name for f in manifest.files if f.role == "weights"]
    return names[0] if names else f"{manifest.name}.onnx"


def _write_for(manifest: Manifest, directory: Path, seed: int, int8: bool) -> dict[str, Path]:
    spec = manifest.inputs[0]
    path = write_reference_onnx(
        Path(directory) / _weights_file(manifest),
        seed=seed,
        input_name=spec.name,
        output_name=manifest.outputs[0].name,
        num_classes=manifest.num_classes,
        int8=int8,
        opset=manifest.convert.onnx.opset,
        samples=int(spec.shape[-1]),
    )
    return {path.name: path}


def write_aclnet_reference(manifest: Manifest, directory: Path, seed: int) -> dict[str, Path]:
    """An ONNX file named like upstream (aclnet_des_53.onnx), names from the manifest, seeded AclNet."""
    return _write_for(manifest, directory, seed, int8=False)


def write_aclnet_int8_reference(manifest: Manifest, directory: Path, seed: int) -> dict[str, Path]:
    """A QDQ ONNX named like upstream (aclnet_des_53_int8.onnx): the seeded AclNet quantized by NNCF."""
    return _write_for(manifest, directory, seed, int8=True)
