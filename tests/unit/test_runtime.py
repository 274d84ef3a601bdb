"""Resolution of the speed switches: what ``auto`` means on each kind of device."""

from __future__ import annotations

import pytest
import torch

from crackkit import runtime
from crackkit.config import RunConfig

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    "amp, bf16_cpu, expected",
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, None),
        ("off", True, None),
        ("bf16", False, torch.bfloat16),
    ],
)
def test_amp_on_a_cpu(monkeypatch, amp, bf16_cpu, expected):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: bf16_cpu)
    assert runtime.resolve_amp(RunConfig(amp=amp), CPU) is expected


@pytest.mark.parametrize(
    "channels_last, amp, bf16_cpu, size, inference, expected",
    [
        ("auto", "auto", True, (360, 640), True, True),  # bf16 inference on large inputs
        ("auto", "auto", True, (192, 320), True, True),
        ("auto", "auto", True, (96, 160), True, False),  # small inputs: contiguous
        ("auto", "auto", True, (360, 640), False, True),  # training alike
        ("auto", "auto", True, (96, 160), False, False),
        ("auto", "auto", False, (360, 640), True, False),  # float32: contiguous
        ("auto", "off", True, (360, 640), True, False),
        ("on", "off", False, (96, 160), False, True),
        ("off", "auto", True, (360, 640), True, False),
    ],
)
def test_channels_last_on_a_cpu(
    monkeypatch, channels_last, amp, bf16_cpu, size, inference, expected
):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: bf16_cpu)
    cfg = RunConfig(channels_last=channels_last, amp=amp, input_height=size[0], input_width=size[1])
    assert runtime.resolve_channels_last(cfg, CPU, inference=inference) is expected
    assert runtime.configure_speed(cfg, CPU, inference=inference)[1] is expected


def test_channels_last_auto_on_cuda():
    assert runtime.resolve_channels_last(RunConfig(), CUDA) is True
    assert runtime.resolve_channels_last(RunConfig(), CUDA, inference=True) is True
    assert runtime.resolve_channels_last(RunConfig(channels_last="off"), CUDA) is False


@pytest.mark.parametrize(
    "fft_conv, device, expected",
    [("auto", CPU, True), ("auto", CUDA, False), ("on", CUDA, True), ("off", CPU, False)],
)
def test_fft_conv(fft_conv, device, expected):
    assert runtime.resolve_fft_conv(RunConfig(fft_conv=fft_conv), device) is expected
