"""Kong's DCASE 2018 Task 2 baselines, `Vggish` and `BaselineCnn`, with the upstream module names.

Module and parameter names match the upstream PyTorch code, so a checkpoint saved by its training
script ({'iteration', 'state_dict', 'optimizer'}) loads strictly. Input: log-mel patches
[N, 128 frames, 64 bins]; output: log-softmax over the classes. The global max pooling is written
as amax over time and frequency (the same values as upstream's max_pool2d over the whole map, and a
single ReduceMax in ONNX).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.plugins import register_network


@register_network("dcase2018", "baseline_cnn")
class BaselineCnn(nn.Module):
    """Four 5x5 stride-2 convs (no bias) + BN + ReLU, 64/128/256/512, global max, linear, log-softmax."""

    def __init__(self, num_classes: int = 41):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, kernel_size=(5, 5), stride=(2, 2), padding=(2, 2), bias=False)
        self.conv2 = nn.Conv2d(64, 128, kernel_size=(5, 5), stride=(2, 2), padding=(2, 2), bias=False)
        self.conv3 = nn.Conv2d(128, 256, kernel_size=(5, 5), stride=(2, 2), padding=(2, 2), bias=False)
        self.conv4 = nn.Conv2d(256, 512, kernel_size=(5, 5), stride=(2, 2), padding=(2, 2), bias=False)
        self.fc1 = nn.Linear(512, num_classes, bias=True)
        self.bn1 = nn.BatchNorm2d(64)
        self.bn2 = nn.BatchNorm2d(128)
        self.bn3 = nn.BatchNorm2d(256)
        self.bn4 = nn.BatchNorm2d(512)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        _, seq_len, mel_bins = input.shape
        x = input.reshape(-1, 1, seq_len, mel_bins)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        x = torch.amax(x, dim=(2, 3))
        return F.log_softmax(self.fc1(x), dim=-1)

    @property
    def final_layer(self) -> nn.Module:
        return self.fc1


class VggishConvBlock(nn.Module):
    """[3x3 conv (no bias) -> BN -> ReLU] x 2 -> 2x2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False
        )
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, kernel_size=(2, 2), stride=(2, 2))


@register_network("dcase2018", "vggish")
class Vggish(nn.Module):
    """Four VGG blocks 64/128/256/512, global max, linear, log-softmax (upstream HEAD's model)."""

    def __init__(self, num_classes: int = 41):
        super().__init__()
        self.conv_block1 = VggishConvBlock(1, 64)
        self.conv_block2 = VggishConvBlock(64, 128)
        self.conv_block3 = VggishConvBlock(128, 256)
        self.conv_block4 = VggishConvBlock(256, 512)
        self.fc_final = nn.Linear(512, num_classes, bias=True)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        _, seq_len, mel_bins = input.shape
        x = input.reshape(-1, 1, seq_len, mel_bins)
        x = self.conv_block1(x)
        x = self.conv_block2(x)
        x = self.conv_block3(x)
        x = self.conv_block4(x)
        x = torch.amax(x, dim=(2, 3))
        return F.log_softmax(self.fc_final(x), dim=-1)

    @property
    def final_layer(self) -> nn.Module:
        return self.fc_final
