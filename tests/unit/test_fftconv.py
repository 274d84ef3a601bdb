"""The tiled-FFT convolution against torch's direct convolution (computed in float64) as oracle."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from crackkit import fftconv
from crackkit.config import ConfigError, RunConfig
from crackkit.fftconv import MIN_TRAIN_PIXELS, FFTConv2d, fft_conv2d, set_fft_conv, tile_sizes
from crackkit.model import build_model


def _oracle(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x.double(), w.double(), padding=w.shape[-1] // 2)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.mark.parametrize(
    "n, c, o, k, h, w, tile",
    [
        (2, 3, 5, 15, 45, 80, 16),  # several tiles both ways, a partial last tile
        (1, 4, 6, 15, 12, 20, 16),  # one tile high, two wide
        (3, 2, 3, 15, 7, 9, 16),  # map smaller than the kernel
        (1, 2, 2, 15, 1, 1, 16),  # a single pixel
        (2, 3, 4, 5, 17, 23, 4),  # a 5x5 kernel, small tiles, odd sizes
        (1, 1, 1, 3, 6, 6, 2),  # 3x3 kernel
        (2, 3, 4, 7, 10, 11, 1),  # one-pixel tiles
    ],
)
def test_fft_conv2d_matches_direct_convolution_and_its_gradients(n, c, o, k, h, w, tile):
    gen = torch.Generator().manual_seed(n * 100 + k)
    x = torch.randn(n, c, h, w, generator=gen, requires_grad=True)
    weight = torch.randn(o, c, k, k, generator=gen, requires_grad=True)
    ref = _oracle(x, weight)
    out = fft_conv2d(x, weight, tile=tile)
    assert out.shape == ref.shape
    assert out.dtype == torch.float32
    assert _rel(out, ref) < 1e-5
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    ref_gx, ref_gw = torch.autograd.grad((ref * g).sum(), (x, weight))
    gx, gw = torch.autograd.grad((out * g.float()).sum(), (x, weight))
    assert _rel(gx, ref_gx) < 1e-5
    assert _rel(gw, ref_gw) < 1e-5


def test_autograd_works_after_the_same_tiling_ran_under_inference_mode():
    x = torch.randn(1, 2, 13, 11, requires_grad=True)
    weight = torch.randn(3, 2, 5, 5, requires_grad=True)
    with torch.inference_mode():
        fft_conv2d(x.detach(), weight.detach(), tile=7)  # first use of this tiling's matrices
    fft_conv2d(x, weight, tile=7).sum().backward()
    assert x.grad is not None and weight.grad is not None


def test_a_single_nonzero_weight_shifts_the_input_by_hand():
    # Cross-correlation with a one-hot 3x3 kernel at (row 0, col 2) reads x[i - 1, j + 1].
    x = torch.arange(1.0, 1 + 4 * 5).view(1, 1, 4, 5)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 0, 2] = 1.0
    expected = torch.zeros(4, 5)
    expected[1:, :4] = x[0, 0, :3, 1:]
    out = fft_conv2d(x, weight, tile=2)[0, 0]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "size, target, expected",
    [
        (45, 16, (15, 3)),
        (80, 16, (16, 5)),
        (12, 16, (12, 1)),
        (1, 16, (1, 1)),
        (45, 10, (9, 5)),
        (17, 4, (4, 5)),
    ],
)
def test_tile_sizes_by_hand(size, target, expected):
    assert tile_sizes(size, target) == expected


def test_bf16_autocast_error_is_that_of_a_bf16_convolution():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 24, 40, generator=gen).relu()
    weight = torch.randn(32, 16, 15, 15, generator=gen) * 0.05
    ref = _oracle(x, weight)

    def rms_rel(a):
        return ((a.double() - ref).square().mean().sqrt() / ref.square().mean().sqrt()).item()

    conv = FFTConv2d(16, 32, 15, padding=7, bias=False)
    conv.weight.data.copy_(weight)
    conv.fft = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        direct = F.conv2d(x, weight, padding=7)
        fft = fft_conv2d(x, weight)
        with torch.inference_mode():
            cached = conv(x)  # the spectrum computed once, kept in bf16
    assert direct.dtype == torch.bfloat16
    # bf16 keeps 8 significant bits: both errors are of order 2**-9; the FFT's within 2x (its
    # inverse also runs in bf16; benchmarks/fft_conv.py measured 1.47x at 45x80).
    assert rms_rel(direct) < 1e-2
    assert rms_rel(fft) < 2 * rms_rel(direct)
    assert rms_rel(cached) < 2 * rms_rel(direct)


def test_module_keeps_the_conv2d_state_dict_and_falls_back_when_off():
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(3, 4, 5, padding=2, bias=False)
    conv = FFTConv2d(3, 4, 5, padding=2, bias=False)
    conv.load_state_dict(plain.state_dict())
    assert list(conv.state_dict()) == ["weight"]
    x = torch.randn(2, 3, 70, 70)
    assert torch.equal(conv(x), plain(x))  # fft off: the direct convolution itself
    conv.fft = True
    assert conv.uses_fft(x)  # 2 * 70 * 70 >= MIN_TRAIN_PIXELS
    torch.testing.assert_close(conv(x), plain(x), atol=1e-5, rtol=1e-4)
    small = torch.randn(1, 3, 8, 8)
    assert 64 < MIN_TRAIN_PIXELS and not conv.uses_fft(small)  # training on a small map: direct
    with torch.no_grad():
        assert conv.uses_fft(small)  # inference: FFT with a cached spectrum


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2, padding=2),
        dict(padding=2, bias=True),
        dict(padding=1),
        dict(padding=2, dilation=1, groups=3),
    ],
)
def test_unsupported_layers_stay_direct(kwargs):
    conv = FFTConv2d(3, 3, 5, **{"bias": False, **kwargs})
    conv.fft = True
    x = torch.randn(1, 3, 64, 64)
    assert not conv.uses_fft(x)
    assert torch.equal(
        conv(x),
        F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups),
    )


def test_inference_cache_follows_weight_updates():
    torch.manual_seed(0)
    conv = FFTConv2d(4, 6, 15, padding=7, bias=False)
    conv.fft = True
    x = torch.randn(2, 4, 20, 30)
    with torch.inference_mode():
        first = conv(x)
        spec = conv._cache[2]
        assert conv(x) is not first and conv._cache[2] is spec  # reused
    torch.testing.assert_close(first, F.conv2d(x, conv.weight, padding=7), atol=1e-5, rtol=1e-4)
    # Optimizer steps change the weight in place, the fused ones without bumping its version
    # counter (crackkit trains with fused Adam/SGD): the next inference must see every change.
    before = first
    for opt in (
        torch.optim.Adam(conv.parameters(), lr=0.01, fused=True),
        torch.optim.SGD(conv.parameters(), lr=0.5),
    ):
        conv(torch.randn(4, 4, 40, 40)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        with torch.inference_mode():
            after = conv(x)
        expected = F.conv2d(x, conv.weight, padding=7)
        torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(after, before)
        before = after
    # So must a loaded state dict.
    other = torch.nn.Conv2d(4, 6, 15, padding=7, bias=False)
    conv.load_state_dict(other.state_dict())
    with torch.no_grad():
        loaded = conv(x)
    torch.testing.assert_close(loaded, other(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ["segdecnet", "segdecnet-up", "segdecnet++"])
def test_network_with_fft_equals_network_without(arch, monkeypatch):
    torch.manual_seed(0)
    direct = build_model(arch, 3, 64, 128).train()
    fft = copy.deepcopy(direct)
    assert set_fft_conv(fft, True) == 1 and set_fft_conv(direct, False) == 1
    fft.encoder.stage4[0].tile = 4
    # 6 maps of 8x16 are below the training threshold: lower it to run the FFT under autograd.
    monkeypatch.setattr(fftconv, "MIN_TRAIN_PIXELS", 1)
    x = torch.rand(6, 3, 64, 128)
    d_dec, d_seg = direct(x)
    f_dec, f_seg = fft(x)
    (d_dec.sum() + d_seg.square().mean()).backward()
    (f_dec.sum() + f_seg.square().mean()).backward()
    torch.testing.assert_close(f_seg, d_seg, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(f_dec, d_dec, atol=1e-4, rtol=1e-4)
    # Normalisation layers make the gradients sensitive to float32 rounding: between torch's own
    # oneDNN and native direct convolutions they differ by up to 5e-3 (relative L2) on this net.
    for (name, p), q in zip(direct.named_parameters(), fft.parameters(), strict=True):
        if p.grad is not None and p.grad.norm() > 1e-6:  # (smaller ones are rounding noise)
            assert ((q.grad - p.grad).norm() / p.grad.norm()).item() < 1e-2, name
    direct.eval()
    fft.eval()
    with torch.inference_mode():
        torch.testing.assert_close(fft(x)[1], direct(x)[1], atol=1e-4, rtol=1e-4)


def test_bad_fft_conv_value_names_the_parameter():
    with pytest.raises(ConfigError, match="fft_conv"):
        RunConfig(fft_conv="yes")


def test_channels_last_in_channels_last_out():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 30, 32, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(5, 4, 15, 15, generator=gen)
    out = fft_conv2d(x, weight)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert _rel(out, _oracle(x, weight)) < 1e-5
    assert fft_conv2d(x.contiguous(), weight).is_contiguous()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fft_conv2d(x, weight).dtype == torch.bfloat16
