"""The layers of the MSE-Adapter plug-in: a modality encoder (LSTM over the true-length frames) and the
Multi-Scale-Fusion block.

Hub remote code: this module imports only torch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class MSEAdapterModalityEncoder(nn.Module):
    """1-layer LSTM over the true-length frames of one modality; its final hidden state goes through a Linear
    layer."""

    def __init__(self, feature_dim: int, hidden_size: int, fusion_size: int):
        super().__init__()
        self.lstm = nn.LSTM(feature_dim, hidden_size, num_layers=1, batch_first=True)
        self.projection = nn.Linear(hidden_size, fusion_size)

    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`values` (batch, frames, feature_dim), `lengths` (batch,) -> (batch, fusion_size).

        A sample with length 0 is a missing modality: its output is exactly zero, so it adds nothing to the
        fusion.
        """
        batch_size = values.shape[0]
        present = lengths > 0
        if values.shape[1] == 0 or not present.any():
            return self.projection.weight.new_zeros(batch_size, self.projection.out_features)
        # Packing rejects length 0; those rows run over one padding frame and are zeroed below.
        packed = pack_padded_sequence(
            values.to(self.projection.weight.dtype),
            lengths.clamp(min=1).cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        _, (final_hidden, _) = self.lstm(packed)
        encoded = self.projection(final_hidden[-1])
        return encoded * present.unsqueeze(-1).to(encoded.dtype)


class MSEAdapterMultiScaleFusion(nn.Module):
    """Three bottleneck branches `Linear(fusion -> d/k) - GELU - Linear(d/k -> fusion)`, merged by a (1, 3)
    convolution over the stacked branch outputs, then `Linear(fusion -> d)`."""

    def __init__(self, fusion_size: int, hidden_size: int, ratios: list[int]):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Linear(fusion_size, hidden_size // ratio),
                nn.GELU(),
                nn.Linear(hidden_size // ratio, fusion_size),
            )
            for ratio in ratios
        )
        self.merge = nn.Conv2d(1, 1, kernel_size=(1, len(ratios)))
        self.output_projection = nn.Linear(fusion_size, hidden_size)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """`fused` (batch, fusion_size) -> (batch, hidden_size)."""
        scales = torch.stack([branch(fused) for branch in self.branches], dim=-1)  # (batch, fusion, 3)
        merged = self.merge(scales.unsqueeze(1)).flatten(1)  # (batch, 1, fusion, 1) -> (batch, fusion)
        return self.output_projection(merged)
