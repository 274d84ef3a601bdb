"""Tests for crackkit.model: shapes, input checks, parameter count and gradient-flow adjustment."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from crackkit.losses import decision_loss
from crackkit.model import ARCHITECTURES, FeatureNorm, build_model
from crackkit.specs import check_input_size

OUTPUT_STRIDE = {"segdecnet": 8, "segdecnet-up": 1, "segdecnet++": 1}


# (in channels, out channels, kernel) of every convolution; each is followed by a feature norm.
def _segdecnet_convolutions(in_channels: int) -> list[tuple[int, int, int]]:
    return [
        (in_channels, 32, 5),  # stage 1
        (32, 64, 5),  # stage 2
        (64, 64, 5),
        (64, 64, 5),
        (64, 64, 5),  # stage 3
        (64, 64, 5),
        (64, 64, 5),
        (64, 64, 5),
        (64, 1024, 15),  # stage 4: the 1024-channel volume at 1/8
        (1024, 1, 1),  # segmentation output
        (1024 + 1, 8, 5),  # decision head over volume + segmentation map
        (8, 16, 5),
        (16, 32, 5),
    ]


def _published_segdecnet_parameters(in_channels: int) -> int:
    """SegDecNet's parameter count from the architecture description of Božič et al. (2021)."""
    convolutions = _segdecnet_convolutions(in_channels)
    conv_weights = sum(cin * cout * k * k for cin, cout, k in convolutions)  # no conv biases
    norm_scale_and_bias = sum(2 * cout for _, cout, _ in convolutions)
    fc_inputs = 32 + 32 + 1 + 1  # max and mean of 32 features, max and mean of the seg map
    return conv_weights + norm_scale_and_bias + fc_inputs + 1


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shapes(architecture: str, in_channels: int) -> None:
    """Decision is (N, 1); segmentation is at 1/8 for segdecnet and full size for segdecnet++."""
    torch.manual_seed(0)
    model = build_model(architecture, in_channels, 64, 128).eval()
    with torch.no_grad():
        dec, seg = model(torch.rand(2, in_channels, 64, 128))
    stride = OUTPUT_STRIDE[architecture]
    assert dec.shape == (2, 1)
    assert seg.shape == (2, 1, 64 // stride, 128 // stride)
    assert model.output_stride == stride


def test_unknown_architecture_lists_valid_names() -> None:
    """An unknown architecture name is refused with the list of valid ones."""
    with pytest.raises(ValueError, match="unknown architecture") as excinfo:
        build_model("unet", 3, 64, 128)
    assert all(name in str(excinfo.value) for name in ARCHITECTURES)


@pytest.mark.parametrize(
    ("height", "width", "name"),
    [
        (68, 128, "input_height=68"),
        (64, 132, "input_width=132"),
        (4, 128, "input_height=4"),
        (0, 128, "input_height=0"),
    ],
)
def test_bad_input_size_names_the_parameter(height: int, width: int, name: str) -> None:
    """A side that is not a positive multiple of 8 is refused, naming the config field."""
    with pytest.raises(ValueError, match=name):
        build_model("segdecnet", 3, height, width)


@pytest.mark.parametrize(
    ("height", "width", "nearest"),
    [(64, 64, (64, 128)), (32, 48, (64, 128)), (56, 512, (64, 512)), (96, 96, (96, 128))],
)
def test_input_too_small_for_the_head_gives_the_nearest_valid_size(height, width, nearest):
    """The head's last map (floor(H/64) x floor(W/64)) needs two cells; the message says
    what fits."""
    with pytest.raises(ValueError, match="at least 2 cells") as excinfo:
        build_model("segdecnet++", 3, height, width)
    assert f"input_height={nearest[0]}, input_width={nearest[1]}" in str(excinfo.value)
    build_model("segdecnet++", 3, *nearest)


@pytest.mark.parametrize(("height", "width"), [(64, 128), (128, 64), (96, 160), (360, 640)])
def test_smallest_and_usual_sizes_are_accepted(height: int, width: int) -> None:
    """64x128 and 128x64 are the smallest inputs; the synthetic and CRACK500 sizes are valid."""
    check_input_size(height, width)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_segdecnet_parameter_count_matches_published_architecture(in_channels: int) -> None:
    """segdecnet has exactly the parameters of the published layer list."""
    model = build_model("segdecnet", in_channels, 64, 128)
    assert _count(model) == _published_segdecnet_parameters(in_channels)


def test_segdecnet_parameter_count_value() -> None:
    """The hand count for RGB input is 15,638,813 parameters."""
    assert _published_segdecnet_parameters(3) == 15_638_813


@pytest.mark.parametrize(
    ("architecture", "count"),
    [("segdecnet", 15_638_813), ("segdecnet-up", 16_151_837), ("segdecnet++", 16_171_485)],
)
def test_parameter_counts_at_3x360x640_equal_the_originals(architecture: str, count: int) -> None:
    """The counts of the originals' models at 3x360x640 (the networks hold no size-bound layer)."""
    assert _count(build_model(architecture, 3, 360, 640)) == count


def _decision_gradients(
    architecture: str, multiplier: float
) -> tuple[dict[str, torch.Tensor | None], dict[str, torch.Tensor | None]]:
    torch.manual_seed(0)
    model = build_model(architecture, 3, 64, 128).train()
    model.gradient_multiplier = multiplier
    dec, _ = model(torch.rand(2, 3, 64, 128))
    loss = decision_loss(dec, torch.tensor([1.0, 0.0]))
    named = list(model.named_parameters())
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    head = {n: g for (n, _), g in zip(named, grads, strict=True) if n.startswith("decision.")}
    rest = {n: g for (n, _), g in zip(named, grads, strict=True) if not n.startswith("decision.")}
    return head, rest


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_gradient_adjustment_cuts_decision_gradient(architecture: str) -> None:
    """With multiplier 0 the decision loss moves only the decision head."""
    head, rest = _decision_gradients(architecture, 0.0)
    assert rest and all(g is None or not g.any() for g in rest.values())
    assert head and all(g is not None and g.abs().sum() > 0 for g in head.values())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_without_adjustment_decision_gradient_reaches_encoder(architecture: str) -> None:
    """With multiplier 1 the decision loss sends gradient into every encoder parameter."""
    _, rest = _decision_gradients(architecture, 1.0)
    encoder = {n: g for n, g in rest.items() if n.startswith("encoder.")}
    assert encoder and all(g is not None and g.abs().sum() > 0 for g in encoder.values())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_forward_is_deterministic_on_cpu(architecture: str) -> None:
    """Two models built from the same seed give bit-identical outputs."""
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(architecture, 3, 64, 128).eval()
        x = torch.rand(2, 3, 64, 128)
        with torch.no_grad():
            outputs.append(model(x))
    for first, second in zip(*outputs, strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize("mode", ["autograd", "inference", "inference-channels-last"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_feature_norm_against_the_published_formula(dtype: torch.dtype, mode: str) -> None:
    """scale * (x - mean) / sqrt(std + eps) + bias, std unbiased over H, W (float64 oracle), on
    both paths: with autograd and without (one group_norm of C groups + addcmul, any layout)."""
    torch.manual_seed(0)
    norm = FeatureNorm(3).to(torch.float64 if dtype == torch.float64 else torch.float32)
    with torch.no_grad():
        norm.scale.copy_(torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1, 1))
        norm.bias.copy_(torch.tensor([0.0, -1.0, 3.0]).view(1, 3, 1, 1))
    x = torch.randn(2, 3, 5, 7) * 4 + 2
    x64 = x.to(dtype).double()
    mean = x64.mean(dim=(2, 3), keepdim=True)
    std = x64.std(dim=(2, 3), unbiased=True, keepdim=True)
    expected = (x64 - mean) / torch.sqrt(std + 1e-3) * norm.scale.double() + norm.bias.double()
    x_in = x.to(dtype)
    if mode == "inference-channels-last":
        x_in = x_in.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(mode != "autograd"):
        out = norm(x_in)
    assert out.dtype == dtype
    assert out.requires_grad == (mode == "autograd")
    if mode == "inference-channels-last":
        assert out.is_contiguous(memory_format=torch.channels_last)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(out.double(), expected, atol=tol, rtol=tol)


def test_feature_norm_worked_example() -> None:
    """Map [1, 2, 3, 6]: mean 3, unbiased std sqrt(14/3); (x - 3) / sqrt(std + 0.001)."""
    norm = FeatureNorm(1).double()
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]], dtype=torch.float64)
    denom = math.sqrt(math.sqrt(14 / 3) + 0.001)
    expected = torch.tensor([[[[-2.0, -1.0], [0.0, 3.0]]]], dtype=torch.float64) / denom
    torch.testing.assert_close(norm(x), expected, atol=1e-12, rtol=1e-12)
    assert norm(x)[0, 0, 1, 1].item() == pytest.approx(2.0407, abs=1e-4)  # 3 / sqrt(2.1612)


def test_convolutions_use_xavier_normal_initialisation() -> None:
    """Encoder convolutions are xavier-normal: std sqrt(2 / (fan_in + fan_out))."""
    torch.manual_seed(0)
    model = build_model("segdecnet", 3, 64, 128)
    w = model.encoder.stage3[0][0].weight  # 64 -> 64, 5x5: fans 1600 and 1600
    assert w.std().item() == pytest.approx(math.sqrt(2 / 3200), rel=0.03)
    w = model.encoder.stage4[0][0].weight  # 64 -> 1024, 15x15
    assert w.std().item() == pytest.approx(math.sqrt(2 / ((64 + 1024) * 225)), rel=0.01)


def test_feature_norm_gradients_equal_the_published_formula() -> None:
    """Input, scale and bias gradients equal autograd through the plain formula (float64)."""
    torch.manual_seed(3)
    norm = FeatureNorm(4).double()
    with torch.no_grad():
        norm.scale.uniform_(0.5, 2.0)
        norm.bias.normal_()
    x = (torch.randn(3, 4, 6, 9, dtype=torch.float64) * 2 + 1).requires_grad_()
    probe = torch.randn(3, 4, 6, 9, dtype=torch.float64)
    params = [x, norm.scale, norm.bias]
    got = torch.autograd.grad((norm(x) * probe).sum(), params)
    std = torch.std(x, dim=(2, 3), keepdim=True)
    mean = torch.mean(x, dim=(2, 3), keepdim=True)
    ref = norm.scale * (x - mean) / torch.sqrt(std + 1e-3) + norm.bias
    want = torch.autograd.grad((ref * probe).sum(), params)
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("architecture", ["segdecnet-up", "segdecnet++"])
def test_inference_paths_compute_the_training_paths_function(architecture):
    """Without autograd the model runs FeatureNorm's inference path and, either way, the decoder
    adds its transposed convolutions' bias apart; in float64 both equal the original calls
    (FeatureNorm with autograd, ``nn.ConvTranspose2d`` with its bias) to 1e-10."""
    from crackkit.model import set_bias_apart

    torch.manual_seed(0)
    model = build_model(architecture, 3, 64, 128).double().eval()
    for module in model.modules():  # non-zero biases, so that where they are added matters
        if isinstance(module, nn.ConvTranspose2d):
            nn.init.uniform_(module.bias, -1.0, 1.0)
    x = torch.rand(2, 3, 64, 128, dtype=torch.float64)
    assert set_bias_apart(model, False) == 3
    reference = model(x)  # autograd on: FeatureNorm's training path, the original's calls
    set_bias_apart(model, True)
    with torch.inference_mode():
        fast = model(x)
    for a, b in zip(fast, reference, strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-10, rtol=1e-10)


def _plain_feature_norm(x, scale, bias, eps=1e-3):
    """The published formula in plain operations (the oracle)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True)
    return scale * (x - mean) / torch.sqrt(std + eps) + bias


# (channels, memory format): a contiguous map, a channels-last map normalised in place as
# (pixels, channels) rows, and a channels-last map too narrow for that (through a contiguous copy)
LAYOUTS = {
    "contiguous": (4, torch.contiguous_format),
    "channels-last": (16, torch.channels_last),
    "channels-last-narrow": (4, torch.channels_last),
}


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "autograd-chain"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_feature_norm_training_path_in_every_layout(layout: str, fused: bool) -> None:
    """Values and input, scale and bias gradients of the training path equal autograd through the
    plain formula (float64, 1e-10) in every memory format, by the fused hand-written backward and
    by autograd's own chain, also for a constant map (finite gradients, torch.std's backward
    taking the std's gradient at 0 as 0); the fused path keeps the input's memory format."""
    channels, fmt = LAYOUTS[layout]
    torch.manual_seed(5)
    norm = FeatureNorm(channels).double()
    norm.fused_backward = fused
    with torch.no_grad():
        norm.scale.uniform_(0.5, 2.0)
        norm.bias.normal_()
    x = torch.randn(3, channels, 6, 9, dtype=torch.float64) * 2 + 1
    x[1, 2] = 0.1  # a constant map: std 0
    x = x.contiguous(memory_format=fmt).requires_grad_()
    probe = torch.randn(3, channels, 6, 9, dtype=torch.float64)
    params = [x, norm.scale, norm.bias]
    out = norm(x)
    got = torch.autograd.grad((out * probe).sum(), params)
    ref = _plain_feature_norm(x, norm.scale, norm.bias)
    want = torch.autograd.grad((ref * probe).sum(), params)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    for g, r in zip(got, want, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, atol=1e-10, rtol=1e-10)
    if fused:
        assert out.is_contiguous(memory_format=fmt)
        assert got[0].is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_feature_norm_bf16_training_gradients_no_worse_than_autograds_chain(layout: str) -> None:
    """For bf16 maps the fused path's gradients are as close to the float64 oracle (on the same
    bf16 inputs) as autograd's chain through the plain calls: within 1% in norm, and at most a
    quarter worse than the chain's own error."""
    channels, fmt = LAYOUTS[layout]
    torch.manual_seed(7)
    x = (torch.randn(2, channels, 12, 20) * 3 + 4).to(torch.bfloat16).contiguous(memory_format=fmt)
    probe = torch.randn(2, channels, 12, 20).to(torch.bfloat16)
    scale = torch.rand(1, channels, 1, 1) + 0.5
    bias = torch.randn(1, channels, 1, 1)
    x64 = x.double().requires_grad_()
    ref = _plain_feature_norm(x64, scale.double(), bias.double())
    (want,) = torch.autograd.grad((ref * probe.double()).sum(), [x64])
    errors = {}
    for fused in (True, False):
        norm = FeatureNorm(channels)
        norm.fused_backward = fused
        with torch.no_grad():
            norm.scale.copy_(scale)
            norm.bias.copy_(bias)
        xin = x.clone().requires_grad_()
        out = norm(xin)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.double(), ref.detach(), atol=3e-2, rtol=2e-2)
        (got,) = torch.autograd.grad(out, [xin], probe)
        errors[fused] = ((got.double() - want).norm() / want.norm()).item()
    assert errors[True] < 1e-2
    assert errors[True] <= 1.25 * errors[False] + 1e-4, errors


def test_feature_norm_double_backward_needs_autograds_chain() -> None:
    """The fused training path is differentiable once and says so; with ``fused_backward =
    False`` a second derivative goes through autograd's chain."""
    torch.manual_seed(2)
    norm = FeatureNorm(4).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad((norm(x) ** 3).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.pow(2).sum().backward()
    norm.fused_backward = False
    (g,) = torch.autograd.grad((norm(x) ** 3).sum(), x, create_graph=True)
    g.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()
