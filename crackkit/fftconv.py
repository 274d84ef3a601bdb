"""A large-kernel convolution by tiled FFT: the same function as ``nn.Conv2d``, far fewer flops.

SegDecNet's 15x15 convolution from 64 to 1024 channels holds three quarters of the network's
arithmetic (53 GMAC per 360x640 image, forward). Computed directly it is the largest single cost
of a CPU training step. Through the convolution theorem it costs far less: the map is cut into
tiles of ``t`` output pixels per side, each tile (with its ``k - 1`` pixel border) is transformed
by a real 2-D DFT of side ``L = t + k - 1``, the channel sum becomes one batched matrix product
per frequency, and an inverse DFT gives each tile's output (overlap-save). For the 15x15 layer at
45x80 (15x16 tiles, transforms of 29x30) the channel sum takes 1.8 GMAC per image instead of 53,
and all transforms together about 1.1 more at batch 4: some 18x fewer multiply-adds.

Layout and arithmetic, all differentiable by autograd (gradients are those of the convolution):

* the input tiles go through ``torch.fft.rfft2``; the weight spectrum is two real products with
  DFT matrices that write it frequency-major, as the channel sum reads it;
* the channel sum is one real ``bmm`` over real and imaginary parts stacked, so that under bf16
  autocast it runs in bf16 as the direct convolution would, and so does the inverse; the forward
  transforms of input and weight stay in float32. The error is then that of a bf16 convolution
  (``benchmarks/fft_conv.py`` prints both);
* the inverse keeps only the ``t x t`` valid outputs of each tile: two small real matrix products,
  not a full inverse FFT.

In inference (no autograd) the weight spectrum is cached on the module until the weight changes.

Only what SegDecNet needs is supported: stride 1, dilation 1, one group, an odd square kernel with
``padding = k // 2`` ("same"), and no bias; :class:`FFTConv2d` falls back to the direct convolution
for anything else and whenever ``fft`` is off.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FFTConv2d",
    "MIN_TRAIN_PIXELS",
    "fft_conv2d",
    "set_fft_conv",
    "tile_sizes",
    "weight_spectrum",
]

DEFAULT_TILE = 16
# With autograd recording, the weight spectrum and its gradient are computed at every call, which
# on a 2-core CPU costs about what the direct bf16 15x15 convolution (64 -> 1024 channels) of some
# 3,000 output pixels costs (in float32, some 1,500; benchmarks/fft_conv.py); smaller batches of
# maps go the direct way.
MIN_TRAIN_PIXELS = 3072


def tile_sizes(size: int, target: int = DEFAULT_TILE) -> tuple[int, int]:
    """``(tile, count)``: the fewest tiles of at most ``target`` pixels that cover ``size``, each
    as small as that count allows (with 16: 45 -> three tiles of 15, 80 -> five of 16)."""
    count = math.ceil(size / target)
    return math.ceil(size / count), count


def _angles(rows: int, cols: int, length: int) -> torch.Tensor:
    """``2 pi r c / length`` for r < rows, c < cols, float64."""
    r = torch.arange(rows, dtype=torch.float64)
    c = torch.arange(cols, dtype=torch.float64)
    return 2 * math.pi * torch.outer(r, c) / length


@functools.lru_cache(maxsize=32)
def _matrices(k: int, th: int, tw: int, lh: int, lw: int) -> dict[str, torch.Tensor]:
    """The real DFT matrices of one tiling, float32 on the CPU (index names as in the code).

    Complex values are stacked as (real, imaginary) along an axis of size 2 (``r``, ``q``).
    """
    half = lw // 2 + 1
    # Width, forward, real input: X[f] = sum_b x[b] exp(-2 pi i f b / lw).
    ang = _angles(half, k, lw)  # (f, b)
    fwd_w = torch.stack((torch.cos(ang), -torch.sin(ang)), dim=1)  # (f, r, b)
    # Height, forward, complex input (r' in, r out): rows (u, r), columns (r', a).
    ang = _angles(lh, k, lh)  # (u, a)
    cos, sin = torch.cos(ang), torch.sin(ang)
    fwd_h = torch.stack(
        (torch.stack((cos, sin), dim=1), torch.stack((-sin, cos), dim=1)), dim=1
    )  # (u, r, r', a)
    # Height, inverse, complex: rows (q', s), columns (u, q); 1 / lh.
    ang = _angles(th, lh, lh)  # (s, u)
    cos, sin = torch.cos(ang) / lh, torch.sin(ang) / lh
    inv_h = torch.stack(
        (torch.stack((cos, -sin), dim=2), torch.stack((sin, cos), dim=2)), dim=0
    )  # (q', s, u, q)
    # Width, inverse, Hermitian half spectrum to real: rows t, columns (f, q'); weights 1, 2, .., 1.
    weight = torch.full((half,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if lw % 2 == 0:
        weight[-1] = 1.0
    ang = _angles(tw, half, lw)  # (t, f)
    inv_w = torch.stack((torch.cos(ang), -torch.sin(ang)), dim=2) * (weight / lw)[:, None]
    out = {
        "fwd_w": fwd_w.reshape(2 * half, k),
        "fwd_h": fwd_h.reshape(2 * lh, 2 * k),
        "inv_h": inv_h.reshape(2 * th, 2 * lh),
        "inv_w": inv_w.reshape(tw, 2 * half),
    }
    # Normal tensors even when first built under inference_mode: autograd may use them later.
    with torch.inference_mode(False):
        return {name: m.to(torch.float32) for name, m in out.items()}


def weight_spectrum(weight: torch.Tensor, lengths: tuple[int, int]) -> torch.Tensor:
    """The weight's half spectrum, frequency-major, real and imaginary parts stacked.

    weight: (O, C, k, k) -> (Lw // 2 + 1, Lh, 2 * C, O) float32, indexed (f, u, (r, c), o): width
    frequency f, height frequency u, r = 0 real / 1 imaginary. Two real matrix products, so that
    autograd's backward is two more.
    """
    o, c, k, _ = weight.shape
    lh, lw = lengths
    half = lw // 2 + 1
    m = _matrices(k, 1, 1, lh, lw)
    with torch.autocast(weight.device.type, enabled=False):  # in float32 even under autocast
        w = weight.float().permute(3, 2, 1, 0).reshape(k, k * c * o)  # (b, (a, c, o))
        t1 = (m["fwd_w"].to(w.device) @ w).view(half, 2 * k, c * o)  # (f, (r', a), (c, o))
        spec = torch.matmul(m["fwd_h"].to(w.device), t1)  # (f, (u, r), (c, o))
    return spec.view(half, lh, 2 * c, o)


def fft_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    tile: int = DEFAULT_TILE,
    spectrum: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.conv2d(x, weight, padding=k // 2)`` computed by tiled FFT.

    x: (N, C, H, W); weight: (O, C, k, k) with k odd -> (N, O, H, W), float32, or under autocast
    the autocast dtype (in which the channel sum and the inverse then run); channels-last when
    ``x`` is. ``spectrum``: a cached :func:`weight_spectrum` for this tiling (inference only).
    """
    n, c, h, w = x.shape
    o, _, k, _ = weight.shape
    pad = k // 2
    (th, nh), (tw, nw) = tile_sizes(h, tile), tile_sizes(w, tile)
    lh, lw = th + k - 1, tw + k - 1
    half = lw // 2 + 1
    freqs, m = half * lh, n * nh * nw
    mats = {name: t.to(x.device) for name, t in _matrices(k, th, tw, lh, lw).items()}
    with torch.autocast(x.device.type, enabled=False):
        xp = F.pad(x.float(), (pad, nw * tw + k - 1 - w - pad, pad, nh * th + k - 1 - h - pad))
        tiles = xp.unfold(2, lh, th).unfold(3, lw, tw)  # (N, C, nh, nw, Lh, Lw)
        xs = torch.view_as_real(torch.fft.rfft2(tiles))  # (N, C, nh, nw, Lh, Lr, 2)
        xs = xs.permute(5, 4, 0, 2, 3, 6, 1).reshape(freqs, m, 2, c)  # ((f, u), M, r, C)
        # Correlation: Y = X conj(W). With X = a + ib and W = p + iq:
        # Re Y = [a, b] . [p, q] and Im Y = [b, -a] . [p, q], summed over the channels.
        re, im = xs[:, :, 0], xs[:, :, 1]
        xcat = torch.stack((torch.cat((re, im), -1), torch.cat((im, -re), -1)), dim=1)
        xcat = xcat.reshape(freqs, 2 * m, 2 * c)  # ((f, u), (q, M), (r, C))
        if spectrum is None:
            spectrum = weight_spectrum(weight, (lh, lw))
    # ((f, u), (q, M), 2C) @ ((f, u), 2C, O): in the autocast dtype when autocast is on.
    ys = torch.bmm(xcat, spectrum.reshape(freqs, 2 * c, o))
    ys = ys.view(half, 2 * lh, m * o)  # (f, (u, q), (M, O))
    # The inverse runs in the dtype of the channel sum: bf16 under autocast, as a bf16 direct
    # convolution computes and returns its output (the tests bound the error by that of one).
    z = torch.matmul(mats["inv_h"].to(ys.dtype), ys)  # (f, (q', s), (M, O)): along the height
    # Along the width, Hermitian half spectrum to real values.
    out = mats["inv_w"].to(z.dtype) @ z.view(2 * half, th * m * o)  # (t, (s, M, O))
    out = out.view(tw, th, n, nh, nw, o)
    if c > 1 and x.is_contiguous(memory_format=torch.channels_last):
        # One copy straight into channels-last: (N, nh, th, nw, tw, O) viewed as NCHW.
        out = out.permute(2, 3, 1, 4, 0, 5).reshape(n, nh * th, nw * tw, o).permute(0, 3, 1, 2)
    else:
        out = out.permute(2, 5, 3, 1, 4, 0).reshape(n, o, nh * th, nw * tw)
    return out[:, :, :h, :w]


class FFTConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same state dict) that computes by tiled FFT when ``fft`` is
    on and the call is supported (see the module notes); direct otherwise."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fft = False
        self.tile = DEFAULT_TILE
        self._cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def supports_fft(self) -> bool:
        kh, kw = self.kernel_size
        return (
            kh == kw
            and kh % 2 == 1
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding == (kh // 2, kw // 2)
            and self.padding_mode == "zeros"
            and self.bias is None
        )

    def _spectrum(self, x: torch.Tensor) -> torch.Tensor | None:
        """The cached weight spectrum for inference, or ``None`` when autograd needs its own."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            self._cache = None
            return None
        k = self.kernel_size[0]
        lengths = (
            tile_sizes(x.shape[-2], self.tile)[0] + k - 1,
            tile_sizes(x.shape[-1], self.tile)[0] + k - 1,
        )
        dtype = (
            torch.get_autocast_dtype(x.device.type)
            if torch.is_autocast_enabled(x.device.type)
            else torch.float32
        )
        key = (lengths, dtype, x.device)
        # Compared by value: fused optimizers update weights in place without bumping the tensor
        # version counter, so neither identity nor version tells that the weight changed.
        if (
            self._cache is None
            or self._cache[0] != key
            or not torch.equal(self._cache[1], self.weight)
        ):
            with torch.no_grad():
                weight = self.weight.detach().clone()
                spec = weight_spectrum(weight, lengths).to(dtype)
            self._cache = (key, weight, spec)
        return self._cache[2]

    def uses_fft(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` goes through the FFT: ``fft`` on, a supported layer, and, when
        autograd records (training), at least :data:`MIN_TRAIN_PIXELS` output pixels."""
        if not (self.fft and self.supports_fft()):
            return False
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return x.shape[0] * x.shape[-2] * x.shape[-1] >= MIN_TRAIN_PIXELS
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_fft(x):
            return super().forward(x)
        return fft_conv2d(x, self.weight, self.tile, self._spectrum(x))


def set_fft_conv(model: nn.Module, enabled: bool) -> int:
    """Switch each :class:`FFTConv2d` of ``model`` to FFT (``True``) or direct; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, FFTConv2d):
            module.fft = bool(enabled)
            module._cache = None
            count += 1
    return count
