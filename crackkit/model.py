"""The published SegDecNet networks in plain PyTorch, kept apart from the training machinery.

Three architectures (names in :data:`crackkit.specs.ARCHITECTURES`), each the same function as
the authors' code, with the same parameters and the same initialisation:

* ``segdecnet``: the 2021 mixed-supervision network (Božič, Tabernik, Skočaj; ``SegDecNet`` of
  vicoslab/mixed-segdec-net-comind2021, ``SegDecNetOriginalJIM`` of
  vicoslab/segdec-net-plusplus-conbuildmat2023). An encoder of 5x5 convolutions (32, then 3 x 64,
  4 x 64 channels) with 2x2 max-pooling between its stages and a 15x15 convolution to 1024
  channels at 1/8 resolution; a 1x1 convolution + FeatureNorm gives the 1/8 segmentation map.
* ``segdecnet-up``: the network of the fork that produced the seed report
  (maticsuc/mixed-segdec-net-comind2021): the same encoder and a decoder back to full resolution.
  Each decoder stage is a 5x5 transposed convolution with stride 2 and no padding (1024 -> 16,
  16 -> 16, 16 -> 8), its output brought to the skip's size the way the original does (padding
  by the size difference, split as ``d // 2`` before and ``d - d // 2`` after, negative: a crop),
  the skip and the upsampled map concatenated in that order, then 1, 4 and 3 conv blocks (5x5
  convolution + FeatureNorm + ReLU); a 5x5 convolution 8 -> 1 + FeatureNorm(1) ends it. The
  encoder's stage outputs are the skips.
* ``segdecnet++``: SegDecNet++ (Tabernik, Šuc, Skočaj 2023): ``segdecnet-up`` whose skips are gated
  as ``sigmoid(SE(v)) * conv1x1(v)``, SE being a global average, a 1x1 convolution (ratio 1),
  swish and a 1x1 convolution. As in the published code, the 2nd and 3rd skips share one SE
  module (it is assigned twice there; the second assignment wins).

The decision head is the same in all three: the volume concatenated with the 1/8 segmentation map
(for the full-resolution networks, the full map average-pooled by 8) goes through three stages of
2x2 max-pooling (flooring) and a 5x5 conv block (8, 16, 32 channels); the global max and mean of
those features and of the segmentation map (the full map for the full-resolution networks) feed
one linear layer.

FeatureNorm is the published ``scale * (x - mean) / sqrt(std + eps) + bias`` with the unbiased
standard deviation over the spatial axes and ``eps = 0.001`` (the square root of a standard
deviation, as published). The FeatureNorm that the originals create "without bias" still holds a
trainable bias parameter (``nn.Parameter`` defaults to ``requires_grad=True``), so it has one here
too and is counted in the parameter totals.

Forwards take ``x: (N, C, H, W)`` and return ``(decision_logits: (N, 1), seg_logits: (N, 1, h, w))``
with ``h, w = H/8, W/8`` for ``segdecnet`` (:attr:`output_stride` 8) and ``H, W`` otherwise.
:func:`crackkit.inference.full_resolution` brings a 1/8 map to the input size as the 2023 code does
(nearest, x8).

With gradient-flow adjustment (``gradient_multiplier = 0``) the decision head's inputs are cut
from the graph, so the decision loss sends no gradient into the segmentation path; a multiplier
between 0 and 1 scales that gradient, as the originals' ``GradientMultiplyLayer`` does.

:func:`convert_original_state_dict` maps state dicts saved by the original code onto these modules;
:func:`load_original` returns a network loaded from one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from crackkit.fftconv import FFTConv2d
from crackkit.specs import ARCHITECTURES, DOWNSAMPLING, check_input_size

__all__ = [
    "ARCHITECTURES",
    "FeatureNorm",
    "OriginalWeightsError",
    "SegDecNet",
    "SegDecNetPlusPlus",
    "SegDecNetUp",
    "build_model",
    "check_input_size",
    "convert_original_state_dict",
    "load_original",
    "original_key_shapes",
    "init_segmentation_prior",
    "init_decision_prior",
    "segmentation_bias",
    "set_bias_apart",
]


class OriginalWeightsError(ValueError):
    """A state dict of the original code does not fit the named architecture."""


class FeatureNorm(nn.Module):
    """Per-sample, per-channel normalisation over the spatial axes, as published.

    ``scale * (x - mean) / sqrt(std + eps) + bias`` with ``std`` the unbiased standard deviation
    over H, W. Needs at least two pixels per map. The output has the input's dtype.

    Three paths compute the published formula, each through fused normalisation kernels rather
    than separate mean, std and elementwise passes:

    * training on the CPU (autograd recording): :class:`_FeatureNormFunction`, ``group_norm`` or
      per-sample ``batch_norm`` kernels forward and backward, in the input's memory format,
      gradients by a hand-written backward (float64 tests hold values and gradients to the plain
      formula to 1e-10; for bf16 maps the input gradient is closer to a float64 oracle than
      autograd's chain is). ``fused_backward = False`` (per instance or class) restores
      autograd's chain below;
    * training elsewhere (CUDA, MPS) and 1-pixel maps: ``group_norm`` (one group per sample and
      channel) with a per-sample, per-channel weight ``scale * sqrt(var + e0) / sqrt(std + eps)``
      computed differentiably from the variance, so autograd differentiates the published
      function; bf16 variances accumulated in float32;
    * without autograd (:meth:`_inference`): one ``group_norm`` of ``C`` groups and ``addcmul``.

    x: (N, C, H, W) -> (N, C, H, W).
    """

    _E0 = 1e-10
    #: on the CPU, train through :class:`_FeatureNormFunction` (one fused backward pass);
    #: ``False`` restores autograd's chain through the variance (same function and gradients)
    fused_backward = True

    def __init__(self, num_features: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3]
        if not torch.is_grad_enabled() and n > 1:
            return self._inference(x)
        if x.device.type == "cpu" and n > 1 and self.fused_backward:
            return _FeatureNormFunction.apply(x, self.scale, self.bias, self.eps)
        return self._autograd(x)

    def _autograd(self, x: torch.Tensor) -> torch.Tensor:
        """The function through autograd's own chain (the variance's gradient as separate
        passes); used off the CPU, for 1-pixel maps, and with ``fused_backward = False``."""
        n_, c, h, w = x.shape
        n = h * w
        _, var = _spatial_mean_variance(x)
        std = _sqrt_zero_grad(var * (n / (n - 1))) if n > 1 else var * float("nan")
        weight = self.scale.view(1, c).to(var.dtype) * torch.sqrt(var + self._E0)
        weight = weight * torch.rsqrt(std + self.eps)
        bias = self.bias.view(1, c).to(var.dtype).expand(n_, c)
        xin = x if x.device.type == "cpu" or x.dtype == var.dtype else x.to(var.dtype)
        out = torch.group_norm(
            xin.reshape(1, n_ * c, h, w), n_ * c, weight.reshape(-1), bias.reshape(-1), self._E0
        )
        return out.view(n_, c, h, w).to(x.dtype)

    def _inference(self, x: torch.Tensor) -> torch.Tensor:
        """The same function without autograd, in any memory format and without copies of the
        map: one ``group_norm`` of ``C`` groups gives ``z = (x - mean) * rstd`` with ``rstd =
        1 / sqrt(var + e0)`` (statistics per sample and channel, accumulated in float32 in its
        kernel, channels-last kept), then one ``addcmul`` applies the per-sample, per-channel
        ``scale / (rstd * sqrt(std + eps))`` and the bias. For a bf16 map the statistics come
        back in bf16, so the weight carries bf16 rounding (the output's precision anyway)."""
        n_, c, h, w = x.shape
        n = h * w
        z, _, rstd = torch.ops.aten.native_group_norm(x, None, None, n_, c, n, c, self._E0)
        rstd = rstd.view(n_, c).to(torch.float32 if x.dtype == torch.bfloat16 else x.dtype)
        var = (rstd.reciprocal().square() - self._E0).clamp_min(0)
        std = torch.sqrt(var * (n / (n - 1)))
        weight = self.scale.view(1, c).to(rstd.dtype) / (rstd * torch.sqrt(std + self.eps))
        bias = self.bias.view(1, c).to(rstd.dtype).expand(n_, c)
        return torch.addcmul(
            bias.reshape(n_, c, 1, 1).to(z.dtype), z, weight.reshape(n_, c, 1, 1).to(z.dtype)
        )


def _spatial_mean_variance(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance over H, W per sample and channel, both (N, C), in any memory
    format without a copy of the map; float32 for half-precision maps (accumulated from the sums
    of ``x`` and ``x^2``)."""
    if x.dtype in (torch.float32, torch.float64):
        var, mean = torch.var_mean(x, dim=(2, 3), correction=0)
        return mean, var
    n = x.shape[2] * x.shape[3]
    mean = x.sum(dim=(2, 3), dtype=torch.float32) / n
    sq = torch.linalg.vector_norm(x, dim=(2, 3), dtype=torch.float32).square() / n
    return mean, (sq - mean * mean).clamp_min(0)


# Channels-last maps with at least this many channels are normalised in place as per-sample
# (pixels, channels) matrices; narrower ones go through a contiguous copy, which the fused kernels
# handle several times faster at 8 channels (a 2-core AMD EPYC, 4 x 8 x 360 x 640, bf16).
_ROWS_MIN_CHANNELS = 16


def _sqrt_zero_grad(v: torch.Tensor) -> torch.Tensor:
    """``sqrt(v)`` for ``v >= 0`` with gradient 0 at ``v = 0`` (where ``torch.sqrt``'s is
    infinite), as ``torch.std``'s backward takes it: a constant map gets finite gradients, as in
    the originals, not NaN."""
    positive = v > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, v, 1.0)), 0.0)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def _rows(t: torch.Tensor) -> list[torch.Tensor]:
    """Each sample of a channels-last (N, C, H, W) map as a (H * W, C) view (no copy)."""
    n_, c, h, w = t.shape
    return [t[i].permute(1, 2, 0).reshape(h * w, c) for i in range(n_)]


class _FeatureNormFunction(torch.autograd.Function):
    """FeatureNorm's training function on the CPU: fused kernels forward and backward, with a
    hand-written backward, in the input's memory format.

    The published function per sample and channel is ``scale * a * (x - mean) + bias`` with
    ``a = 1 / sqrt(s + eps)`` and ``s`` the unbiased standard deviation. Two normalisation kernels
    compute it: for a contiguous map ``group_norm`` with one group per sample and channel (the
    map viewed as one sample of ``N * C`` channels); for a channels-last map ``batch_norm`` of each
    sample viewed as a (pixels, channels) matrix, whose per-column statistics are the same. Both
    compute ``(x - m) * r * weight + b`` with ``r = 1 / sqrt(var + e0)``, statistics in float32
    for bf16 maps.

    Forward: a first call gives mean and variance (its output, written into the output buffer,
    is overwritten), a second call with ``weight = scale * a / r`` gives the output, rounded once.

    Backward: with ``G = sum(g * (x - mean))`` over the ``D`` pixels of a map, the published
    function's input gradient is ``scale * a * (g - mean(g)) - scale * G * a^3 / (2 (D - 1) s) *
    (x - mean)``. Both kernels' backward computes ``w * r * (g - mean(g)) - w * r^3 * G / D * (x -
    mean)`` from the mean and ``r`` it is handed, so with ``r = a * sqrt(D / (2 (D - 1) s))`` and
    ``w = scale * a / r`` it computes exactly ours: one reduction and one elementwise pass where
    autograd's chain spends several on the variance's gradient. The kernel's weight gradient
    ``G * r`` and bias gradient ``sum(g)`` give the scale and bias gradients. Float64 tests hold
    values and gradients to the plain formula; no copy of the map is made except for
    channels-last maps of fewer than 16 channels.

    Differentiable once: double backward (``create_graph=True``) and ``torch.func`` transforms
    need ``FeatureNorm.fused_backward = False`` (autograd's chain)."""

    @staticmethod
    def forward(ctx, x, scale, bias, eps):  # noqa: D102
        n_, c, h, w = x.shape
        d = h * w
        rows = c >= _ROWS_MIN_CHANNELS and x.is_contiguous(memory_format=torch.channels_last)
        layout = _memory_format(x)
        x = x if rows else x.contiguous()
        sdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        out = torch.empty_like(x)  # the statistics pass writes here too, then the output pass
        mean, var = (_row_stats if rows else _plane_stats)(x, sdtype, out)
        std = torch.sqrt(var * (d / (d - 1)))
        a = torch.rsqrt(std + eps)
        scale2 = scale.view(1, c).to(sdtype)
        weight = scale2 * a * torch.sqrt(var + FeatureNorm._E0)
        bias1 = bias.view(c).to(sdtype)
        spare = torch.empty(2, n_ if rows else 1, c if rows else n_ * c, dtype=sdtype)
        if rows:
            for i, (xi, oi) in enumerate(zip(_rows(x), _rows(out), strict=True)):
                torch.ops.aten.native_batch_norm.out(
                    xi, weight[i], bias1, None, None, True, 0.0, FeatureNorm._E0,
                    out=oi, save_mean=spare[0, i], save_invstd=spare[1, i],
                )  # fmt: skip
        else:
            torch.ops.aten.native_group_norm.out(
                x.view(1, n_ * c, h, w), weight.reshape(-1), bias1.repeat(n_),
                1, n_ * c, d, n_ * c, FeatureNorm._E0,
                out0=out.view(1, n_ * c, h, w), out1=spare[0], out2=spare[1],
            )  # fmt: skip
            out = out.contiguous(memory_format=layout)
        ctx.save_for_backward(x, mean, std, a, scale2)
        ctx.rows, ctx.layout = rows, layout
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: D102
        x, mean, std, a, scale2 = ctx.saved_tensors
        n_, c, h, w = x.shape
        d = h * w
        # where std = 0 (a constant map) the std's gradient is taken as 0, as torch.std's is: any
        # finite rstd then gives the kernel's (x - mean) term a factor sum(g * (x - mean)) = 0
        rstd = torch.where(std > 0, a * torch.sqrt(d / (2 * (d - 1) * std)), 1.0)
        weight = scale2 * a / rstd
        eps0 = FeatureNorm._E0
        if ctx.rows:
            grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
            grad_x = torch.empty_like(x)
            sums = torch.empty(2, n_, c, dtype=mean.dtype)  # G * rstd, sum(g)
            for i, (gi, xi, oi) in enumerate(
                zip(_rows(grad), _rows(x), _rows(grad_x), strict=True)
            ):
                torch.ops.aten.native_batch_norm_backward.out(
                    gi, xi, weight[i], None, None, mean[i], rstd[i], True, eps0,
                    [True, True, True], out0=oi, out1=sums[0, i], out2=sums[1, i],
                )  # fmt: skip
            g_w, g_b = sums[0], sums[1]
        else:
            grad_x, g_w, g_b = torch.ops.aten.native_group_norm_backward(
                grad.to(x.dtype).contiguous().view(1, n_ * c, h, w), x.view(1, n_ * c, h, w),
                mean.view(1, -1), rstd.view(1, -1), weight.reshape(-1),
                1, n_ * c, d, n_ * c, [True, True, True],
            )  # fmt: skip
            grad_x = grad_x.view(n_, c, h, w).contiguous(memory_format=ctx.layout)
            g_w, g_b = g_w.view(n_, c), g_b.view(n_, c)
        grad_scale = (a * g_w / rstd).sum(0).view(1, c, 1, 1)
        grad_bias = g_b.sum(0).view(1, c, 1, 1)
        return grad_x, grad_scale, grad_bias, None


def _plane_stats(
    x: torch.Tensor, sdtype: torch.dtype, spare: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance per sample and channel, (N, C), of a contiguous map, in
    ``sdtype``: one fused ``group_norm`` pass, its normalised map written to ``spare`` (a map
    like ``x``) and discarded; ``var_mean`` for float maps, as fast there."""
    if x.dtype == sdtype:
        return _spatial_mean_variance(x)
    n_, c, h, w = x.shape
    ones = torch.ones(n_ * c, dtype=sdtype)
    stats = torch.empty(2, 1, n_ * c, dtype=sdtype)
    # eps 0: rstd = 1 / sqrt(var), inf for a constant map
    torch.ops.aten.native_group_norm.out(
        x.view(1, n_ * c, h, w), ones, torch.zeros_like(ones), 1, n_ * c, h * w, n_ * c, 0.0,
        out0=spare.view(1, n_ * c, h, w), out1=stats[0], out2=stats[1],
    )  # fmt: skip
    return stats[0].view(n_, c), _variance(stats[1].view(n_, c))


def _row_stats(
    x: torch.Tensor, sdtype: torch.dtype, spare: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance per sample and channel, (N, C), of a channels-last map, in
    ``sdtype``: one fused ``batch_norm`` pass per sample, its output written to ``spare`` (a map
    like ``x``) and discarded."""
    n_, c = x.shape[:2]
    ones = torch.ones(c, dtype=sdtype)
    stats = torch.empty(2, n_, c, dtype=sdtype)
    # eps 0: invstd = 1 / sqrt(var); 0 for a constant map (batch_norm's way)
    for i, (xi, si) in enumerate(zip(_rows(x), _rows(spare), strict=True)):
        torch.ops.aten.native_batch_norm.out(
            xi, ones, torch.zeros_like(ones), None, None, True, 0.0, 0.0,
            out=si, save_mean=stats[0, i], save_invstd=stats[1, i],
        )  # fmt: skip
    return stats[0], _variance(stats[1])


def _variance(rstd: torch.Tensor) -> torch.Tensor:
    """``var`` from ``rstd = 1 / sqrt(var)``; 0 where ``rstd`` is infinite or 0 (the kernels'
    two ways of reporting a constant map)."""
    return torch.where((rstd > 0) & (rstd < torch.inf), rstd.reciprocal().square(), 0.0)


def _xavier(conv: nn.Conv2d) -> nn.Conv2d:
    """The originals' ``Conv2d_init``: xavier-normal weights (their convolutions have no bias)."""
    nn.init.xavier_normal_(conv.weight)
    if conv.bias is not None:
        bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(conv.weight)[0])
        nn.init.uniform_(conv.bias, -bound, bound)
    return conv


def _conv_block(cin: int, cout: int, kernel: int, conv: type[nn.Conv2d] = nn.Conv2d):
    """5x5 (or 15x15) convolution without bias, FeatureNorm, ReLU."""
    return nn.Sequential(
        _xavier(conv(cin, cout, kernel, padding=kernel // 2, bias=False)),
        FeatureNorm(cout),
        nn.ReLU(),
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
    """The segmentation volume; returns the stage outputs at 1, 1/2 and 1/4 and the 1/8 volume."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(_conv_block(in_channels, 32, 5))
        self.stage2 = nn.Sequential(*[_conv_block(c, 64, 5) for c in (32, 64, 64)])
        self.stage3 = nn.Sequential(*[_conv_block(64, 64, 5) for _ in range(4)])
        # The 15x15 convolution holds most of the arithmetic; it may run by FFT (crackkit.fftconv).
        self.stage4 = nn.Sequential(_conv_block(64, 1024, 15, conv=FFTConv2d))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        v1 = self.stage1(x)
        v2 = self.stage2(F.max_pool2d(v1, 2))
        v3 = self.stage3(F.max_pool2d(v2, 2))
        volume = self.stage4(F.max_pool2d(v3, 2))
        return [v1, v2, v3], volume


class DecisionHead(nn.Module):
    """Decision from the volume and the segmentation map.

    volume: (N, 1024, H/8, W/8); seg_small: (N, 1, H/8, W/8); seg_full: (N, 1, h, w) -> (N, 1).
    """

    def __init__(self, volume_channels: int = 1024) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.MaxPool2d(2),
            _conv_block(volume_channels + 1, 8, 5),
            nn.MaxPool2d(2),
            _conv_block(8, 16, 5),
            nn.MaxPool2d(2),
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
        return self.fc(torch.cat(pooled, dim=1).to(self.fc.weight.dtype))


class SegDecNet(nn.Module):
    """SegDecNet (Božič et al. 2021): segmentation at 1/8 resolution plus a decision head."""

    output_stride = DOWNSAMPLING

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels)
        self.seg_head = nn.Sequential(_xavier(nn.Conv2d(1024, 1, 1, bias=False)), FeatureNorm(1))
        self.decision = DecisionHead()
        self.gradient_multiplier = 0.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, volume = self.encoder(x)
        seg = self.seg_head(volume)
        m = self.gradient_multiplier
        seg_in = gradient_multiply(seg, m)
        dec = self.decision(gradient_multiply(volume, m), seg_in, seg_in)
        return dec, seg


def _fit_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Pad (or, by a negative amount, crop) ``x`` to ``size`` as the originals do."""
    dy, dx = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dy == 0 and dx == 0:
        return x
    return F.pad(x, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))


class _UpStage(nn.Module):
    """Transposed 5x5 convolution (stride 2), fit to the skip, ``[skip, up]``, conv blocks."""

    def __init__(self, cin: int, cout: int, skip: int, blocks: int) -> None:
        super().__init__()
        self.bias_apart = True
        self.upsample = nn.ConvTranspose2d(cin, cout, 5, stride=2)
        self.blocks = nn.Sequential(
            *[_conv_block(skip + cout if i == 0 else cout, cout, 5) for i in range(blocks)]
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # The transposed convolution without its bias, then the bias added: the same function,
        # but oneDNN's transposed convolution with a bias ran several times slower on a CPU
        # (16 -> 8 channels at 4x180x320, bf16: 167 ms with the bias, 24 ms without).
        # ``bias_apart`` False is the original's call (benchmarks time the original way with it).
        conv = self.upsample
        if self.bias_apart and conv.bias is not None:
            up = F.conv_transpose2d(x, conv.weight, None, stride=conv.stride)
            up = up + conv.bias.view(1, -1, 1, 1).to(up.dtype)
        else:
            up = conv(x)
        up = _fit_to(up, skip.shape[-2:])
        return self.blocks(torch.cat([skip, up], dim=1))


class Decoder(nn.Module):
    """The full-resolution decoder of ``segdecnet-up`` and ``segdecnet++``."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = _UpStage(1024, 16, 64, blocks=1)
        self.up2 = _UpStage(16, 16, 64, blocks=4)
        self.up3 = _UpStage(16, 8, 32, blocks=3)
        self.out = nn.Sequential(_xavier(nn.Conv2d(8, 1, 5, padding=2, bias=False)), FeatureNorm(1))

    def forward(self, volume: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        s1, s2, s3 = skips
        return self.out(self.up3(self.up2(self.up1(volume, s3), s2), s1))


class _SqueezeExcite(nn.Module):
    """Global average, 1x1 convolution (ratio 1), swish, 1x1 convolution: (N, C, 1, 1) logits."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels, 1)
        self.expand = nn.Conv2d(channels, channels, 1)
        for conv in (self.reduce, self.expand):  # the published module's own initialisation
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / conv.out_channels))
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(F.silu(self.reduce(x.mean(dim=(2, 3), keepdim=True))))


class SkipGates(nn.Module):
    """SegDecNet++'s skips: ``sigmoid(SE(v)) * conv1x1(v)``; the 2nd and 3rd share one SE."""

    def __init__(self) -> None:
        super().__init__()
        self.proj1 = nn.Conv2d(32, 32, 1, bias=False)
        self.proj2 = nn.Conv2d(64, 64, 1, bias=False)
        self.proj3 = nn.Conv2d(64, 64, 1, bias=False)
        self.se1 = _SqueezeExcite(32)
        self.se23 = _SqueezeExcite(64)

    def forward(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        v1, v2, v3 = skips
        return [
            torch.sigmoid(se(v)) * proj(v)
            for v, proj, se in (
                (v1, self.proj1, self.se1),
                (v2, self.proj2, self.se23),
                (v3, self.proj3, self.se23),
            )
        ]


class SegDecNetUp(nn.Module):
    """The seed fork's network: SegDecNet with a full-resolution decoder on plain skips."""

    output_stride = 1
    gated_skips = False

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels)
        if self.gated_skips:
            self.gates = SkipGates()
        self.decoder = Decoder()
        self.decision = DecisionHead()
        self.gradient_multiplier = 0.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips, volume = self.encoder(x)
        if self.gated_skips:
            skips = self.gates(skips)
        seg = self.decoder(volume, skips)
        m = self.gradient_multiplier
        seg_in = gradient_multiply(seg, m)
        seg_small = F.avg_pool2d(seg_in, DOWNSAMPLING)
        dec = self.decision(gradient_multiply(volume, m), seg_small, seg_in)
        return dec, seg


class SegDecNetPlusPlus(SegDecNetUp):
    """SegDecNet++ (Tabernik et al. 2023): the decoder's skips gated by squeeze-excitation."""

    gated_skips = True


_CLASSES: dict[str, type[nn.Module]] = {
    "segdecnet": SegDecNet,
    "segdecnet-up": SegDecNetUp,
    "segdecnet++": SegDecNetPlusPlus,
}


def segmentation_bias(model: nn.Module) -> nn.Parameter:
    """The bias added last to the segmentation logits: that of the final FeatureNorm(1)."""
    if hasattr(model, "decoder"):  # segdecnet-up, segdecnet++
        return model.decoder.out[-1].bias
    return model.seg_head[-1].bias  # segdecnet


#: The crack fraction :func:`init_segmentation_prior` is clamped to (a prior of 0 or 1 is -inf/inf).
PRIOR_RANGE = (1e-4, 0.5)


@torch.no_grad()
def init_segmentation_prior(model: nn.Module, crack_fraction: float) -> float:
    """Set the final segmentation bias to ``logit(crack_fraction)``; returns that bias.

    RetinaNet's prior-probability initialisation (Lin et al. 2017): the published networks end in
    FeatureNorm(1), which normalises the map to zero mean and unit scale before adding its bias,
    so the bias alone sets where the logits start, at the class prior instead of 0 (p = 0.5).
    ``crack_fraction`` is clamped to :data:`PRIOR_RANGE`.
    """
    p = min(max(float(crack_fraction), PRIOR_RANGE[0]), PRIOR_RANGE[1])
    value = math.log(p / (1.0 - p))
    segmentation_bias(model).fill_(value)
    return value


@torch.no_grad()
def init_decision_prior(model: nn.Module) -> None:
    """Start the decision at the segmentation's strongest response: the linear layer's weights 0
    but 1 on the global maximum of the segmentation logits, its bias 0, so that the first
    decision logit is that maximum (an image is as cracked as its most crack-like pixel) and the
    decision head learns from there. The original initialises the layer at random (PyTorch's
    default), so its decision starts near chance and follows the segmentation only as fast as the
    layer learns to read it."""
    fc = model.decision.fc
    fc.weight.zero_()
    fc.bias.zero_()
    fc.weight[0, 64] = 1.0  # [max features (32), mean features (32), max seg, mean seg]


def set_bias_apart(model: nn.Module, enabled: bool) -> int:
    """Add each decoder transposed convolution's bias after it (``True``, crackkit's way) or
    inside it (``False``, the original's ``nn.ConvTranspose2d`` call); returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, _UpStage):
            module.bias_apart = bool(enabled)
            count += 1
    return count


def build_model(
    architecture: str = "segdecnet++", in_channels: int = 3, height: int = 360, width: int = 640
) -> nn.Module:
    """Return the network named ``architecture`` for inputs of ``(in_channels, height, width)``.

    Raises:
        ValueError: unknown architecture (the message lists the valid ones) or a size the
            network cannot take (the message gives the nearest valid one).
    """
    if architecture not in _CLASSES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}"
        )
    check_input_size(height, width)
    return _CLASSES[architecture](in_channels)


# --- The authors' weights -----------------------------------------------------------------------

_BLOCK = r"\.(?P<part>0\.weight|1\.scale|1\.bias)"
_ENCODER_2023 = {1: 1, 2: 2, 3: 3, 4: 4}
# 2021 ``volume`` Sequential: index -> (stage, block) of crackkit's encoder.
_VOLUME_2021 = {
    0: (1, 0),
    2: (2, 0),
    3: (2, 1),
    4: (2, 2),
    6: (3, 0),
    7: (3, 1),
    8: (3, 2),
    9: (3, 3),
    11: (4, 0),
}
_RULES: list[tuple[re.Pattern[str], Any]] = [
    # 2023 repository (SegDecNetOriginalJIM, SegDecNetPlusPlus) and the seed fork.
    (
        re.compile(r"volume(?P<s>[1-4])\.downsample\.conv_block_(?P<b>\d+)" + _BLOCK),
        lambda m: f"encoder.stage{m['s']}.{int(m['b']) - 1}.{m['part']}",
    ),
    # 2021 repository.
    (
        re.compile(r"volume\.(?P<i>\d+)" + _BLOCK),
        lambda m: (
            (
                f"encoder.stage{_VOLUME_2021[int(m['i'])][0]}."
                f"{_VOLUME_2021[int(m['i'])][1]}.{m['part']}"
            )
            if int(m["i"]) in _VOLUME_2021
            else None
        ),
    ),
    (
        re.compile(r"seg_mask\.(?P<part>0\.weight|1\.scale|1\.bias)"),
        lambda m: f"seg_head.{m['part']}",
    ),
    (
        re.compile(r"extractor\.(?P<i>[135])" + _BLOCK),
        lambda m: f"decision.features.{m['i']}.{m['part']}",
    ),
    (re.compile(r"fc\.(?P<p>weight|bias)"), lambda m: f"decision.fc.{m['p']}"),
    (
        re.compile(r"upsampling(?P<u>[123])\.upsample\.(?P<p>weight|bias)"),
        lambda m: f"decoder.up{m['u']}.upsample.{m['p']}",
    ),
    (
        re.compile(r"upsampling(?P<u>[123])\.conv\.conv_block_(?P<b>\d+)" + _BLOCK),
        lambda m: f"decoder.up{m['u']}.blocks.{int(m['b']) - 1}.{m['part']}",
    ),
    (
        re.compile(r"upsampling4\.(?P<part>0\.weight|1\.scale|1\.bias)"),
        lambda m: f"decoder.out.{m['part']}",
    ),
    (re.compile(r"conv(?P<k>[123])_s\.weight"), lambda m: f"gates.proj{m['k']}.weight"),
    (
        re.compile(r"se_module_diff1\._se_(?P<c>reduce|expand)\.(?P<p>weight|bias)"),
        lambda m: f"gates.se1.{m['c']}.{m['p']}",
    ),
    (
        re.compile(r"se_module_diff2\._se_(?P<c>reduce|expand)\.(?P<p>weight|bias)"),
        lambda m: f"gates.se23.{m['c']}.{m['p']}",
    ),
]


def _crackkit_key(key: str) -> str | None:
    for pattern, target in _RULES:
        m = pattern.fullmatch(key)
        if m:
            return target(m)
    return None


def convert_original_state_dict(
    state_dict: Mapping[str, torch.Tensor], architecture: str
) -> dict[str, torch.Tensor]:
    """Map a state dict saved by the original code onto :func:`build_model`'s modules.

    Accepts the 2023 repository's names (``volume1.downsample.conv_block_1.0.weight``,
    ``extractor.1.1.scale``, ``seg_mask.0.weight``, ``upsampling2.upsample.weight``,
    ``se_module_diff1._se_reduce.weight``, ``conv1_s.weight``, ``fc.weight``, ...), the seed fork's
    (the same without the SE and 1x1 skip layers) and the 2021 repository's (``volume.N.M...``,
    ``seg_mask...``). A ``module.`` prefix (DataParallel) is dropped.

    Raises:
        OriginalWeightsError: a key that no rule maps, a key the architecture has no place for,
            or a parameter of the architecture that the state dict lacks (the message names the
            first one), or a shape that differs.
    """
    if architecture not in _CLASSES:
        raise OriginalWeightsError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}"
        )
    expected = original_key_shapes(architecture)
    with torch.device("meta"):  # shapes only: no memory, no initialisation work
        ours = {k: tuple(v.shape) for k, v in _CLASSES[architecture](3).state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key[len("module.") :] if key.startswith("module.") else key
        target = _crackkit_key(name)
        if target is None or target not in ours:
            raise OriginalWeightsError(
                f"unexpected key {key!r} for architecture {architecture!r}: the original "
                f"{architecture} has no such parameter (it has, e.g., {next(iter(expected))!r})"
            )
        want = ours[target]
        got = tuple(value.shape)
        # The first convolution's input channels follow the checkpoint (1 or 3).
        if target == "encoder.stage1.0.0.weight":
            want = (want[0], got[1], *want[2:])
        if got != want:
            raise OriginalWeightsError(
                f"key {key!r} has shape {got}, but {architecture} needs {want}"
            )
        out[target] = value
    missing = [k for k in ours if k not in out]
    if missing:
        original = {v: k for k, v in _expected_mapping(architecture).items()}
        raise OriginalWeightsError(
            f"missing key {original.get(missing[0], missing[0])!r} for architecture "
            f"{architecture!r} ({len(missing)} parameter(s) absent from the state dict)"
        )
    return out


def _expected_mapping(architecture: str) -> dict[str, str]:
    return {k: _crackkit_key(k) for k in original_key_shapes(architecture)}


def original_key_shapes(architecture: str, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    """The parameter names and shapes the original code's ``state_dict()`` holds.

    ``segdecnet`` uses the 2023 repository's ``SegDecNetOriginalJIM`` names.
    """

    def block(prefix: str, cin: int, cout: int, k: int) -> dict[str, tuple[int, ...]]:
        return {
            f"{prefix}.0.weight": (cout, cin, k, k),
            f"{prefix}.1.scale": (1, cout, 1, 1),
            f"{prefix}.1.bias": (1, cout, 1, 1),
        }

    keys: dict[str, tuple[int, ...]] = {}
    encoder = [
        (1, [(in_channels, 32, 5)]),
        (2, [(32, 64, 5), (64, 64, 5), (64, 64, 5)]),
        (3, [(64, 64, 5)] * 4),
        (4, [(64, 1024, 15)]),
    ]
    for stage, convs in encoder:
        for i, (cin, cout, k) in enumerate(convs, start=1):
            keys |= block(f"volume{stage}.downsample.conv_block_{i}", cin, cout, k)
    for i, (cin, cout) in zip((1, 3, 5), ((1025, 8), (8, 16), (16, 32)), strict=True):
        keys |= block(f"extractor.{i}", cin, cout, 5)
    keys |= {"fc.weight": (1, 66), "fc.bias": (1,)}
    if architecture == "segdecnet":
        keys |= {
            "seg_mask.0.weight": (1, 1024, 1, 1),
            "seg_mask.1.scale": (1, 1, 1, 1),
            "seg_mask.1.bias": (1, 1, 1, 1),
        }
        return keys
    for u, (cin, cout, skip, n) in enumerate(
        ((1024, 16, 64, 1), (16, 16, 64, 4), (16, 8, 32, 3)), start=1
    ):
        keys |= {
            f"upsampling{u}.upsample.weight": (cin, cout, 5, 5),
            f"upsampling{u}.upsample.bias": (cout,),
        }
        for b in range(1, n + 1):
            keys |= block(
                f"upsampling{u}.conv.conv_block_{b}", skip + cout if b == 1 else cout, cout, 5
            )
    keys |= {
        "upsampling4.0.weight": (1, 8, 5, 5),
        "upsampling4.1.scale": (1, 1, 1, 1),
        "upsampling4.1.bias": (1, 1, 1, 1),
    }
    if architecture == "segdecnet++":
        for k, c in ((1, 32), (2, 64), (3, 64)):
            keys[f"conv{k}_s.weight"] = (c, c, 1, 1)
        for m, c in ((1, 32), (2, 64)):
            for part in ("reduce", "expand"):
                keys[f"se_module_diff{m}._se_{part}.weight"] = (c, c, 1, 1)
                keys[f"se_module_diff{m}._se_{part}.bias"] = (c,)
    return keys


def load_original(
    source: str | Path | Mapping[str, torch.Tensor],
    architecture: str,
    *,
    in_channels: int = 3,
    height: int,
    width: int,
) -> nn.Module:
    """The network ``architecture`` loaded with weights saved by the original code.

    Args:
        source: a ``.pth`` file of ``model.state_dict()`` from the original code, or the dict.
        height: the input height the network will be fed (checked by the size rule).
        width: the input width.

    Returns:
        The model in eval mode. Feed it what the original fed: the image as read by OpenCV (BGR
        channel order) divided by 255, resized to ``width x height``.

    Raises:
        OriginalWeightsError: the weights do not fit (the message names the first bad key).
        FileNotFoundError: ``source`` is a path that does not exist.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no original weights at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
    else:
        state = source
    model = build_model(architecture, in_channels, height, width)
    model.load_state_dict(convert_original_state_dict(state, architecture))
    return model.eval()
