"""Tiny PyTorch source models, built by the tests themselves (seeded, seconds).

Module-level classes, so that ``torch.save`` can pickle one for the refusal test.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 conv/bn, a residual add, relu."""

    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, image):
        x = self.layer1(self.stem(image))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class TinyEncoder(nn.Module):
    """Attention written out: a traced nn.TransformerEncoderLayer loses the tensor ranks the
    TorchScript-based ONNX exporter needs (measured: "transpose for tensor of unknown rank")."""

    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.tokens, self.positions = nn.Embedding(64, dim), nn.Embedding(16, dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, dim))
        self.pool = nn.Linear(dim, dim)

    def forward(self, input_ids, attention_mask):
        batch, seq = input_ids.shape
        positions = torch.arange(seq).unsqueeze(0)
        hidden = self.tokens(input_ids) + self.positions(positions)
        q, k, v = self.qkv(hidden).reshape(batch, seq, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5)
        scores = scores + (1.0 - attention_mask[:, None, None, :].to(scores.dtype)) * -10000.0
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, -1)
        hidden = self.norm1(hidden + self.proj(context))
        hidden = self.norm2(hidden + self.ffn(hidden))
        return hidden, torch.tanh(self.pool(hidden[:, 0]))


def torch_cnn():
    """torchvision-style ResNet: conv/bn/relu stem, one BasicBlock with a residual, avgpool, fc."""
    torch.manual_seed(0)
    return TinyResNet().eval(), (torch.randn(1, 3, 32, 32),)


def torch_transformer():
    """BERT-like encoder (see TinyEncoder) on 8 token ids with two padded positions."""
    torch.manual_seed(0)
    ids = torch.randint(0, 64, (1, 8))
    mask = torch.ones(1, 8, dtype=torch.int64)
    mask[0, 6:] = 0
    return TinyEncoder().eval(), (ids, mask)


def save_torch(kind: str, model, example, path: Path) -> Path:
    """``pt2``: torch.export.save; ``torchscript``: torch.jit.save(trace); ``pickle``: torch.save (refused)."""
    if kind == "pt2":
        torch.export.save(torch.export.export(model, example), str(path))
    elif kind == "torchscript":
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, example), str(path))
    else:
        torch.save(model, str(path))
    return path


