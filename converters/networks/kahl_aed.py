"""Kahl et al.'s AcousticEventDetection CNN (Theano/Lasagne), rebuilt in PyTorch.

Every conv and hidden dense layer is wrapped in Lasagne's batch_norm: the layer loses its bias and
is followed by a BN layer that stores beta, gamma, mean and inv_std (1 / sqrt(var + eps)), then ReLU.
`LasagneBatchNorm` computes exactly Lasagne's (x - mean) * (gamma * inv_std) + beta from those
four arrays, so no variance has to be reconstructed. Input [N, 1, 256, 512] spectrogram image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.plugins import register_network

#: Lasagne's BatchNormLayer default epsilon (only used when statistics are set from a variance)
LASAGNE_BN_EPS = 1e-4


class LasagneBatchNorm(nn.Module):
    """Lasagne's BatchNormLayer at inference, over axis 1 (channels or dense units)."""

    def __init__(self, num_features: int, eps: float = LASAGNE_BN_EPS):
        super().__init__()
        self.eps = eps
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("inv_std", torch.ones(num_features))

    mean: torch.Tensor
    inv_std: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.reshape(shape)) * (self.gamma * self.inv_std).reshape(
            shape
        ) + self.beta.reshape(shape)

    def set_statistics(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        self.mean.copy_(mean.to(self.mean.dtype))
        self.inv_std.copy_((1.0 / torch.sqrt(var + self.eps)).to(self.inv_std.dtype))

    def affine_parameters(self) -> tuple[nn.Parameter, nn.Parameter]:
        return self.gamma, self.beta


@register_network("kahl_aed")
class KahlAED(nn.Module):
    """conv 7x7/2 64 -> 5x5 128 -> 3x3 256 -> 3x3 512 -> 3x3 1024 (each BN, ReLU, 2x2 max-pool),
    dense 512 -> dense 512 (BN, ReLU, dropout) -> dense num_classes, softmax (sigmoid if multi-label)."""

    #: (name, in, out, kernel, stride) of the conv stack, in Lasagne layer order
    CONVS = (
        ("conv1", 1, 64, 7, 2),
        ("conv2", 64, 128, 5, 1),
        ("conv3", 128, 256, 3, 1),
        ("conv4", 256, 512, 3, 1),
        ("conv5", 512, 1024, 3, 1),
    )

    def __init__(self, num_classes: int = 20, multi_label: bool = False, height: int = 256, width: int = 512):
        super().__init__()
        self.multi_label = multi_label
        for index, (name, cin, cout, kernel, stride) in enumerate(self.CONVS, start=1):
            # Lasagne pad='same' pads filter_size // 2 on each side
            setattr(self, name, nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False))
            setattr(self, f"bn{index}", LasagneBatchNorm(cout))
        h, w = height // 2, width // 2  # stride-2 first conv
        for _ in self.CONVS:
            h, w = h // 2, w // 2
        flat = 1024 * h * w
        self.fc1 = nn.Linear(flat, 512, bias=False)
        self.bn6 = LasagneBatchNorm(512)
        self.fc2 = nn.Linear(512, 512, bias=False)
        self.bn7 = LasagneBatchNorm(512)
        self.fc3 = nn.Linear(512, num_classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, (name, *_rest) in enumerate(self.CONVS, start=1):
            x = F.relu(getattr(self, f"bn{index}")(getattr(self, name)(x)))
            x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = F.dropout(F.relu(self.bn6(self.fc1(x))), 0.5, self.training)
        x = F.dropout(F.relu(self.bn7(self.fc2(x))), 0.5, self.training)
        x = self.fc3(x)
        return torch.sigmoid(x) if self.multi_label else F.softmax(x, dim=1)

    @property
    def final_layer(self) -> nn.Module:
        return self.fc3
