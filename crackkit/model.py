"""SegDecNet networks in plain PyTorch, kept apart from the training machinery.

Two architectures:

* ``segdecnet``: the mixed-supervision network of Božič, Tabernik and Skočaj (2021). A segmentation
  volume of 5x5 convolutions (32, then 64 channels) over four stages separated by 2x2 max-pooling,
  ending in a 15x15 convolution to 1024 channels at 1/8 of the input resolution; each convolution
  is followed by per-channel feature normalisation and ReLU. A 1x1 convolution gives a one-channel
  segmentation map at 1/8 resolution. The decision head runs three conv stages (8, 16, 32 channels)
  over the volume concatenated with the segmentation map, then global max and average pooling of
  its features and of the segmentation map feed one linear layer.
* ``segdecnet++``: the same encoder and decision head with a U-Net-style decoder back to full
  resolution, as in SegDecNet++ (Tabernik, Šuc, Skočaj 2023): at each scale the upsampled decoder
  features are concatenated with the encoder's skip features, which are gated channel-wise by
  squeeze-and-excitation computed from the decoder features. The decision head sees the volume and
  the segmentation map max-pooled to 1/8; its global pooling takes the full-resolution map.

Both forwards take ``x: (N, C, H, W)`` and return
``(decision_logits: (N, 1), seg_logits: (N, 1, h, w))`` with ``h, w = H/8, W/8`` for
``segdecnet`` and ``H, W`` for ``segdecnet++``.

With gradient-flow adjustment on (``gradient_multiplier = 0``) the decision head's inputs are cut
from the graph, so the decision loss sends no gradient into the segmentation path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackkit.fftconv import FFTConv2d

__all__ = ["ARCHITECTURES", "SegDecNet", "SegDecNetPlusPlus", "build_model", "check_input_size"]

ARCHITECTURES = ("segdecnet", "segdecnet++")
DOWNSAMPLING = 8


class FeatureNorm(nn.Module):
    """Per-sample, per-channel normalisation over the spatial axes, with learned scale and bias.

    x: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, num_features: int, eps: float = 1e-3, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One group per channel: (x - mean) / sqrt(var + eps) over H, W, statistics in float32.
        # torch.group_norm, unlike F.group_norm, accepts a 1x1 map at batch size 1.
        bias = None if self.bias is None else self.bias.view(-1)
        if x.device.type == "cpu" and x.dtype == torch.bfloat16:
            # The CPU kernel takes bf16 maps with float32 parameters and accumulates in float32;
            # skipping the float32 copy took bf16 inference of a 360x640 crop from 0.40 to 0.33 s.
            return torch.group_norm(x, x.shape[1], self.scale.view(-1), bias, self.eps)
        out = torch.group_norm(x.float(), x.shape[1], self.scale.view(-1), bias, self.eps)
        return out.to(x.dtype)


def _conv_block(
    cin: int, cout: int, kernel: int, conv: type[nn.Conv2d] = nn.Conv2d
) -> nn.Sequential:
    return nn.Sequential(
        conv(cin, cout, kernel, padding=kernel // 2, bias=False),
        FeatureNorm(cout),
        nn.ReLU(inplace=True),
    )


class _GradientMultiply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


def gradient_multiply(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Identity forward; the backward gradient is scaled by ``factor`` (0 cuts it)."""
    if factor == 1.0:
        return x
    if factor == 0.0:
        return x.detach()
    return _GradientMultiply.apply(x, factor)


class Encoder(nn.Module):
    """The segmentation volume; returns the skip features of stages 1-3 and the 1/8 volume."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.stage1 = _conv_block(in_channels, 32, 5)
        self.stage2 = nn.Sequential(*[_conv_block(c, 64, 5) for c in (32, 64, 64)])
        self.stage3 = nn.Sequential(*[_conv_block(64, 64, 5) for _ in range(4)])
        # The 15x15 convolution holds most of the arithmetic; it may run by FFT (crackkit.fftconv).
        self.stage4 = _conv_block(64, 1024, 15, conv=FFTConv2d)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        s1 = self.stage1(x)
        s2 = self.stage2(F.max_pool2d(s1, 2))
        s3 = self.stage3(F.max_pool2d(s2, 2))
        volume = self.stage4(F.max_pool2d(s3, 2))
        return [s1, s2, s3], volume


class DecisionHead(nn.Module):
    """Decision from the volume and the segmentation map.

    volume: (N, 1024, H/8, W/8); seg_small: (N, 1, H/8, W/8); seg_full: (N, 1, h, w) -> (N, 1).
    """

    def __init__(self, volume_channels: int = 1024) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.MaxPool2d(2, ceil_mode=True),
            _conv_block(volume_channels + 1, 8, 5),
            nn.MaxPool2d(2, ceil_mode=True),
            _conv_block(8, 16, 5),
            nn.MaxPool2d(2, ceil_mode=True),
            _conv_block(16, 32, 5),
        )
        self.fc = nn.Linear(32 * 2 + 2, 1)

    def forward(
        self, volume: torch.Tensor, seg_small: torch.Tensor, seg_full: torch.Tensor
    ) -> torch.Tensor:
        feats = self.features(torch.cat([volume, seg_small], dim=1))
        pooled = [
            feats.amax(dim=(2, 3)),
            feats.mean(dim=(2, 3)),
            seg_full.amax(dim=(2, 3)),
            seg_full.mean(dim=(2, 3)),
        ]
        return self.fc(torch.cat(pooled, dim=1).float())


class SegDecNet(nn.Module):
    """SegDecNet (Božič et al. 2021): segmentation at 1/8 resolution plus a decision head."""

    output_stride = DOWNSAMPLING

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels)
        self.seg_head = nn.Sequential(nn.Conv2d(1024, 1, 1, bias=False), FeatureNorm(1))
        self.decision = DecisionHead()
        self.gradient_multiplier = 0.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, volume = self.encoder(x)
        seg = self.seg_head(volume)
        m = self.gradient_multiplier
        seg_in = gradient_multiply(seg, m)
        dec = self.decision(gradient_multiply(volume, m), seg_in, seg_in)
        return dec, seg


class _SEGate(nn.Module):
    """Channel gate for a skip connection, computed from the decoder features."""

    def __init__(self, decoder_channels: int, skip_channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(decoder_channels // reduction, 4)
        self.fc1 = nn.Conv2d(decoder_channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, skip_channels, 1)

    def forward(self, decoder: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        w = decoder.mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w))))
        return skip * w


class _UpBlock(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.gate = _SEGate(cin, skip)
        self.conv = nn.Sequential(
            nn.Conv2d(cin + skip, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, self.gate(x, skip)], dim=1))


class SegDecNetPlusPlus(nn.Module):
    """SegDecNet++ (Tabernik et al. 2023): SegDecNet with a full-resolution decoder."""

    output_stride = 1

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels)
        self.bottleneck = nn.Sequential(
            nn.Conv2d(1024, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        self.up3 = _UpBlock(64, 64, 64)
        self.up2 = _UpBlock(64, 64, 32)
        self.up1 = _UpBlock(32, 32, 16)
        self.seg_out = nn.Conv2d(16, 1, 1)
        self.decision = DecisionHead()
        self.gradient_multiplier = 0.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (s1, s2, s3), volume = self.encoder(x)
        y = self.bottleneck(volume)
        y = self.up3(y, s3)
        y = self.up2(y, s2)
        y = self.up1(y, s1)
        seg = self.seg_out(y)
        m = self.gradient_multiplier
        seg_in = gradient_multiply(seg, m)
        seg_small = F.adaptive_max_pool2d(seg_in, volume.shape[-2:])
        dec = self.decision(gradient_multiply(volume, m), seg_small, seg_in)
        return dec, seg


def check_input_size(height: int, width: int) -> None:
    """Refuse input sizes the networks' three 2x2 poolings (and the head's three more) cannot take.

    Raises:
        ValueError: a side is not a positive multiple of 8.
    """
    bad = [(n, v) for n, v in (("input_height", height), ("input_width", width)) if v % 8 or v < 8]
    if bad:
        detail = ", ".join(f"{n}={v}" for n, v in bad)
        raise ValueError(
            f"SegDecNet needs input sides that are multiples of {DOWNSAMPLING} "
            f"(three 2x2 poolings); got {detail}. Try "
            + ", ".join(f"{n}={max(8, round(v / 8) * 8)}" for n, v in bad)
        )


def build_model(
    architecture: str = "segdecnet++", in_channels: int = 3, height: int = 360, width: int = 640
) -> nn.Module:
    """Return the network named ``architecture`` for inputs of ``(in_channels, height, width)``.

    Raises:
        ValueError: unknown architecture (the message lists the valid ones) or a size the
            network's pooling cannot take.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}"
        )
    check_input_size(height, width)
    cls = SegDecNet if architecture == "segdecnet" else SegDecNetPlusPlus
    return cls(in_channels)
