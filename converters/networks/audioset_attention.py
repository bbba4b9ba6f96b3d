"""Kong et al., AudioSet classification with attention: the PyTorch models, upstream module names.

Input [N, 10 frames, 128] VGGish + PCA features already mapped to float ((x - 128) / 128);
output [N, 527] probabilities. The embedding stage and the attention block follow the upstream
code; dropout is inert at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.plugins import register_network

CLAMP = 1e-7


class TaggingHead(nn.Module):
    """Multi-label: one sigmoid score per class."""

    multi_label = True


def relative_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """The logistic function as 1 / (1 + exp(-x)), for the exported graph.

    The attention weights are normalised by their sum over time, so each weight must be right
    relative to its size, down to the clamp at 1e-7 (logits near -16). ONNX Runtime 1.31's Sigmoid
    is accurate only in absolute terms: measured on a grid from -30 to 5, up to 276 % relative
    error (at -17.96, 1.1e-7 absolute); written as Exp and Reciprocal it is within 1.2e-7 relative.
    PyTorch's own sigmoid (the source) is exact to float32 either way; OpenVINO runs both alike.
    """
    return torch.reciprocal(1.0 + torch.exp(-x))


class Attention(nn.Module):
    """Two 1x1 convs with bias: `att` (sigmoid, clamped, normalised over time) weights `cla`."""

    def __init__(self, n_in: int, n_out: int, att_activation: str, cla_activation: str):
        super().__init__()
        self.att_activation = att_activation
        self.cla_activation = cla_activation
        self.att = nn.Conv2d(n_in, n_out, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), bias=True)
        self.cla = nn.Conv2d(n_in, n_out, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), bias=True)

    @staticmethod
    def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
        if activation == "linear":
            return x
        if activation == "relu":
            return F.relu(x)
        if activation == "sigmoid":
            return torch.sigmoid(x)
        if activation == "softmax":
            return F.softmax(x, dim=1)
        raise ValueError(f"unknown activation {activation!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, n_in, T, 1] -> [N, n_out]."""
        logits = self.att(x)
        if self.att_activation == "sigmoid" and torch.onnx.is_in_onnx_export():
            att = relative_sigmoid(logits)[:, :, :, 0]
        else:
            att = self.activate(logits, self.att_activation)[:, :, :, 0]
        cla = self.activate(self.cla(x), self.cla_activation)[:, :, :, 0]
        att = torch.clamp(att, CLAMP, 1.0 - CLAMP)
        norm_att = att / torch.sum(att, dim=2)[:, :, None]
        return torch.sum(norm_att * cla, dim=2)


class EmbeddingLayers(nn.Module):
    """BN over the 128 features, then three [1x1 conv (no bias) -> BN -> ReLU -> dropout]."""

    def __init__(self, freq_bins: int, hidden_units: int, drop_rate: float):
        super().__init__()
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(freq_bins, hidden_units, kernel_size=(1, 1), bias=False)
        self.conv2 = nn.Conv2d(hidden_units, hidden_units, kernel_size=(1, 1), bias=False)
        self.conv3 = nn.Conv2d(hidden_units, hidden_units, kernel_size=(1, 1), bias=False)
        self.bn0 = nn.BatchNorm2d(freq_bins)
        self.bn1 = nn.BatchNorm2d(hidden_units)
        self.bn2 = nn.BatchNorm2d(hidden_units)
        self.bn3 = nn.BatchNorm2d(hidden_units)

    def forward(self, input: torch.Tensor, return_layers: bool = False) -> torch.Tensor | list[torch.Tensor]:
        x = input.transpose(1, 2)[:, :, :, None]  # N, freq_bins, T, 1
        a0 = self.bn0(x)
        a1 = F.dropout(F.relu(self.bn1(self.conv1(a0))), p=self.drop_rate, training=self.training)
        a2 = F.dropout(F.relu(self.bn2(self.conv2(a1))), p=self.drop_rate, training=self.training)
        emb = F.dropout(F.relu(self.bn3(self.conv3(a2))), p=self.drop_rate, training=self.training)
        if return_layers:
            return [a0, a1, a2, emb]
        return emb


@register_network("audioset_attention", "decision_level_single_attention")
class DecisionLevelSingleAttention(TaggingHead):
    def __init__(
        self, num_classes: int = 527, freq_bins: int = 128, hidden_units: int = 1024, drop_rate: float = 0.5
    ):
        super().__init__()
        self.emb = EmbeddingLayers(freq_bins, hidden_units, drop_rate)
        self.attention = Attention(
            hidden_units, num_classes, att_activation="sigmoid", cla_activation="sigmoid"
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.attention(self.emb(input))
        return scores

    @property
    def final_layer(self) -> nn.Module:
        return self.attention.cla


@register_network("audioset_attention", "decision_level_multi_attention")
class DecisionLevelMultiAttention(TaggingHead):
    """One attention block shared by the last two embedding layers, concatenated, linear, sigmoid."""

    def __init__(
        self, num_classes: int = 527, freq_bins: int = 128, hidden_units: int = 1024, drop_rate: float = 0.5
    ):
        super().__init__()
        self.emb = EmbeddingLayers(freq_bins, hidden_units, drop_rate)
        self.attention = Attention(
            hidden_units, num_classes, att_activation="sigmoid", cla_activation="sigmoid"
        )
        self.fc_final = nn.Linear(num_classes * 2, num_classes)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        layers = self.emb(input, return_layers=True)
        output1 = self.attention(layers[-1])
        output2 = self.attention(layers[-2])
        return torch.sigmoid(self.fc_final(torch.cat((output1, output2), dim=1)))

    @property
    def final_layer(self) -> nn.Module:
        return self.fc_final


@register_network("audioset_attention", "feature_level_attention")
class FeatureLevelSingleAttention(TaggingHead):
    """Attention 1024 -> 1024 (linear cla), BN1d, ReLU, dropout, linear, sigmoid."""

    def __init__(
        self, num_classes: int = 527, freq_bins: int = 128, hidden_units: int = 1024, drop_rate: float = 0.5
    ):
        super().__init__()
        self.drop_rate = drop_rate
        self.emb = EmbeddingLayers(freq_bins, hidden_units, drop_rate)
        self.attention = Attention(
            hidden_units, hidden_units, att_activation="sigmoid", cla_activation="linear"
        )
        self.fc_final = nn.Linear(hidden_units, num_classes)
        self.bn_attention = nn.BatchNorm1d(hidden_units)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        b2 = self.attention(self.emb(input))
        b2 = F.dropout(F.relu(self.bn_attention(b2)), p=self.drop_rate, training=self.training)
        return torch.sigmoid(self.fc_final(b2))

    @property
    def final_layer(self) -> nn.Module:
        return self.fc_final
