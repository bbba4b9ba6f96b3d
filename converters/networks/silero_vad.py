"""silero-vad 16 kHz network, rebuilt eagerly with its recurrent state as explicit tensors.

The TorchScript file keeps state, a 64-sample context and the last rate on the module and cannot be
exported; its `_model` submodule exports only with `If` nodes. This rebuild computes the same ops in
the same order (bit-exact to the TorchScript `_model`): chunk [1, 512], state [2, 1, 128] and
context [1, 64] in; probability [1, 1], new state and new context out. Its parameter and buffer
names are those of `_model`, so `from_torchscript` copies them strictly. `y[:, :, 0]` is used
instead of squeeze: the exporter turns a squeeze of a maybe-1 dimension into an `If`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.plugins import register_network

FILTER_LENGTH = 256
HOP_LENGTH = 128
STFT_PAD = 64


class Stft(nn.Module):
    """Magnitude STFT as a strided conv with a fixed real/imaginary basis (reflect-padded on the right)."""

    def __init__(self, filter_length: int = FILTER_LENGTH, hop_length: int = HOP_LENGTH, pad: int = STFT_PAD):
        super().__init__()
        self.filter_length = filter_length
        self.hop_length = hop_length
        self.pad = pad
        self.register_buffer(
            "forward_basis_buffer", torch.zeros(2 * (filter_length // 2 + 1), 1, filter_length)
        )

    forward_basis_buffer: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [0, self.pad], mode="reflect")[:, None, :]
        transform = F.conv1d(x, self.forward_basis_buffer, None, [self.hop_length], [0])
        cutoff = self.filter_length // 2 + 1
        real = transform[:, :cutoff, :]
        imag = transform[:, cutoff:, :]
        return torch.sqrt(torch.pow(real, 2) + torch.pow(imag, 2))


class Block(nn.Module):
    """Re-parameterised conv block: conv1d k3 pad 1 with bias, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.reparam_conv = nn.Conv1d(in_ch, out_ch, 3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.reparam_conv(x))


class Decoder(nn.Module):
    """LSTM cell (state in, state out), then ReLU, 1x1 conv and sigmoid."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.rnn = nn.LSTMCell(hidden, hidden)
        self.decoder = nn.Sequential(nn.Dropout(0.1), nn.ReLU(), nn.Conv1d(hidden, 1, 1), nn.Sigmoid())

    def lstm_cell(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """torch's CPU lstm_cell written out, with its operation order: hidden part first, then input."""
        rnn = self.rnn
        gates = F.linear(h, rnn.weight_hh, rnn.bias_hh) + F.linear(x, rnn.weight_ih, rnn.bias_ih)
        ingate, forgetgate, cellgate, outgate = gates.chunk(4, 1)
        ingate = torch.sigmoid(ingate)
        forgetgate = torch.sigmoid(forgetgate)
        cellgate = torch.tanh(cellgate)
        outgate = torch.sigmoid(outgate)
        c_next = forgetgate * c + ingate * cellgate
        h_next = outgate * torch.tanh(c_next)
        return h_next, c_next

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = self.lstm_cell(x[:, :, 0], state[0], state[1])
        new_state = torch.stack([h, c])
        return self.decoder(h[:, :, None]), new_state


@register_network("silero_vad")
class SileroVad16k(nn.Module):
    """(chunk [B, 512], state [2, B, 128], context [B, 64]) -> (probability [B, 1], new state, new context)."""

    def __init__(self, sample_rate: int = 16000, chunk: int = 512, context: int = 64):
        super().__init__()
        if (sample_rate, chunk, context) != (16000, 512, 64):
            raise ValueError("only the 16 kHz network (chunk 512, context 64) is rebuilt")
        self.context_size = context
        self.stft = Stft()
        self.encoder = nn.Sequential(
            Block(129, 128, 1), Block(128, 64, 2), Block(64, 64, 2), Block(64, 128, 1)
        )
        self.decoder = Decoder(128)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the TorchScript `_model.forward(x[B, 576], state)` computes."""
        features = self.encoder(self.stft(x))
        y, new_state = self.decoder(features, state)
        probability = torch.mean(y[:, 0, :], dim=1, keepdim=True)
        return probability, new_state

    def forward(
        self, chunk: torch.Tensor, state: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.cat([context, chunk], dim=1)
        probability, new_state = self.step(x, state)
        return probability, new_state, x[:, -self.context_size :]

    @classmethod
    def from_torchscript(cls, scripted_model: nn.Module) -> SileroVad16k:
        """Copy the weights of a TorchScript `_model` (16 kHz) into the rebuild; names must match exactly."""
        model = cls()
        source = dict(scripted_model.state_dict())
        target = model.state_dict()
        missing = sorted(set(target) - set(source))
        unexpected = sorted(set(source) - set(target))
        wrong = sorted(
            k for k in set(source) & set(target) if tuple(source[k].shape) != tuple(target[k].shape)
        )
        if missing or unexpected or wrong:
            raise KeyError(
                f"missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(unexpected) or 'none'}; "
                f"wrong shape: {', '.join(wrong) or 'none'}"
            )
        model.load_state_dict(source, strict=True)
        return model.eval()
