"""The networks compute the published functions, on weights given in the originals' key names.

The oracle is a functional forward written here from the published definitions (layer list, key
names and shapes as data, FeatureNorm's formula, the originals' crop of the transposed
convolution's output), independent of crackkit's module structure; crackkit's networks get the
same weights through :func:`crackkit.model.convert_original_state_dict`. All in float64.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from crackkit.model import (
    OriginalWeightsError,
    build_model,
    convert_original_state_dict,
    load_original,
    original_key_shapes,
)

ARCHS = ("segdecnet", "segdecnet-up", "segdecnet++")

# The published layer lists: (prefix, in, out, kernel) of every conv + FeatureNorm + ReLU block.
ENCODER = [
    ("volume1.downsample.conv_block_1", 3, 32, 5),
    ("volume2.downsample.conv_block_1", 32, 64, 5),
    ("volume2.downsample.conv_block_2", 64, 64, 5),
    ("volume2.downsample.conv_block_3", 64, 64, 5),
    ("volume3.downsample.conv_block_1", 64, 64, 5),
    ("volume3.downsample.conv_block_2", 64, 64, 5),
    ("volume3.downsample.conv_block_3", 64, 64, 5),
    ("volume3.downsample.conv_block_4", 64, 64, 5),
    ("volume4.downsample.conv_block_1", 64, 1024, 15),
]
HEAD = [("extractor.1", 1025, 8, 5), ("extractor.3", 8, 16, 5), ("extractor.5", 16, 32, 5)]
# (transposed conv in, out, skip channels, number of blocks) of upsampling1..3.
UP = [(1024, 16, 64, 1), (16, 16, 64, 4), (16, 8, 32, 3)]


def published_keys(arch: str) -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {}

    def block(prefix, cin, cout, k):
        keys[f"{prefix}.0.weight"] = (cout, cin, k, k)
        keys[f"{prefix}.1.scale"] = (1, cout, 1, 1)
        keys[f"{prefix}.1.bias"] = (1, cout, 1, 1)

    for spec in ENCODER + HEAD:
        block(*spec)
    keys["fc.weight"], keys["fc.bias"] = (1, 66), (1,)
    if arch == "segdecnet":
        block("seg_mask", 1024, 1, 1)
        return keys
    for u, (cin, cout, skip, n) in enumerate(UP, start=1):
        keys[f"upsampling{u}.upsample.weight"] = (cin, cout, 5, 5)
        keys[f"upsampling{u}.upsample.bias"] = (cout,)
        for b in range(1, n + 1):
            block(f"upsampling{u}.conv.conv_block_{b}", (skip + cout) if b == 1 else cout, cout, 5)
    block("upsampling4", 8, 1, 5)
    if arch == "segdecnet++":
        for i, c in ((1, 32), (2, 64), (3, 64)):
            keys[f"conv{i}_s.weight"] = (c, c, 1, 1)
        for i, c in ((1, 32), (2, 64)):
            for part in ("reduce", "expand"):
                keys[f"se_module_diff{i}._se_{part}.weight"] = (c, c, 1, 1)
                keys[f"se_module_diff{i}._se_{part}.bias"] = (c,)
    return keys


def random_weights(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in published_keys(arch).items():
        if k.endswith(".scale"):
            out[k] = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        elif k.endswith(".bias") and len(shape) == 4:
            out[k] = 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            if "upsample.weight" in k:
                fan_in = shape[0] * 25
            out[k] = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
    return out


def fnorm(x, w, p):
    std = torch.std(x, dim=(2, 3), keepdim=True)
    mean = torch.mean(x, dim=(2, 3), keepdim=True)
    return w[f"{p}.1.scale"] * ((x - mean) / torch.sqrt(std + 0.001)) + w[f"{p}.1.bias"]


def block(x, w, p):
    k = w[f"{p}.0.weight"].shape[-1]
    return torch.relu(fnorm(F.conv2d(x, w[f"{p}.0.weight"], padding=k // 2), w, p))


def crop_or_pad(x, h, w):
    dy, dx = h - x.shape[2], w - x.shape[3]
    top, left = dy // 2, dx // 2
    bottom, right = dy - top, dx - left
    # Negative amounts crop: [-top : size + bottom] along each axis.
    if min(top, left, bottom, right) < 0:
        assert max(top, left, bottom, right) <= 0
        return x[:, :, -top : x.shape[2] + bottom, -left : x.shape[3] + right]
    return F.pad(x, (left, right, top, bottom))


def reference_forward(w, x, arch):
    v = x
    outs = []
    for i, (p, *_rest) in enumerate(ENCODER):
        if i in (1, 4, 8):
            outs.append(v)
            v = F.max_pool2d(v, 2)
        v = block(v, w, p)
    v1, v2, v3 = outs
    v4 = v
    if arch == "segdecnet":
        seg_small = fnorm(F.conv2d(v4, w["seg_mask.0.weight"]), w, "seg_mask")
        seg_full = seg_small
    else:
        skips = [v1, v2, v3]
        if arch == "segdecnet++":

            def se(v, m):
                y = v.mean(dim=(2, 3), keepdim=True)
                y = F.conv2d(
                    y,
                    w[f"se_module_diff{m}._se_reduce.weight"],
                    w[f"se_module_diff{m}._se_reduce.bias"],
                )
                y = y * torch.sigmoid(y)
                return F.conv2d(
                    y,
                    w[f"se_module_diff{m}._se_expand.weight"],
                    w[f"se_module_diff{m}._se_expand.bias"],
                )

            skips = [
                torch.sigmoid(se(s, m)) * F.conv2d(s, w[f"conv{i}_s.weight"])
                for i, (s, m) in enumerate(zip(skips, (1, 2, 2), strict=True), start=1)
            ]
        y = v4
        for u, skip in zip((1, 2, 3), (skips[2], skips[1], skips[0]), strict=True):
            y = F.conv_transpose2d(
                y, w[f"upsampling{u}.upsample.weight"], w[f"upsampling{u}.upsample.bias"], stride=2
            )
            y = crop_or_pad(y, skip.shape[2], skip.shape[3])
            y = torch.cat([skip, y], dim=1)
            b = 1
            while f"upsampling{u}.conv.conv_block_{b}.0.weight" in w:
                y = block(y, w, f"upsampling{u}.conv.conv_block_{b}")
                b += 1
        seg_full = fnorm(F.conv2d(y, w["upsampling4.0.weight"], padding=2), w, "upsampling4")
        seg_small = F.avg_pool2d(seg_full, 8)
    f = torch.cat([v4, seg_small], dim=1)
    for p, *_ in HEAD:
        f = block(F.max_pool2d(f, 2), w, p)
    fc_in = torch.cat(
        [
            f.amax(dim=(2, 3)),
            f.mean(dim=(2, 3)),
            seg_full.amax(dim=(2, 3)),
            seg_full.mean(dim=(2, 3)),
        ],
        dim=1,
    )
    return F.linear(fc_in, w["fc.weight"], w["fc.bias"]), seg_full


def test_published_key_list_matches_crackkits_description() -> None:
    """crackkit's record of the originals' names and shapes equals the one written here."""
    for arch in ARCHS:
        assert original_key_shapes(arch) == published_keys(arch)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("height", "width"), [(64, 128), (72, 136)])
def test_float64_function_equals_the_published_definition(arch, height, width) -> None:
    """Outputs of crackkit's network equal the functional reference to 1e-10 (float64).

    72x136 gives uneven decoder sizes (the transposed convolutions' outputs are cropped).
    """
    w = random_weights(arch)
    model = build_model(arch, 3, height, width).double().eval()
    model.load_state_dict(convert_original_state_dict(w, arch))
    x = torch.rand(
        2, 3, height, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    with torch.no_grad():
        dec, seg = model(x)
        dec_ref, seg_ref = reference_forward(w, x, arch)
    torch.testing.assert_close(seg, seg_ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(dec, dec_ref, atol=1e-10, rtol=1e-10)


def test_decision_head_floors_a_360x640_input_to_5x10() -> None:
    """The head's max-pools floor: 45x80 -> 22x40 -> 11x20 -> 5x10 (the original's sizes)."""
    model = build_model("segdecnet", 3, 360, 640)
    seen = []
    model.decision.features[5].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(torch.rand(1, 3, 360, 640))
    assert seen[0][-2:] == (5, 10)


def test_2021_repository_names_convert() -> None:
    """The 2021 repository's ``volume.N.M`` names map onto the same network as the 2023 names."""
    w = random_weights("segdecnet")
    index = {1: 0, 2: 2, 3: 3, 4: 4, 5: 6, 6: 7, 7: 8, 8: 9, 9: 11}  # ENCODER row -> volume.N
    old = {}
    for k, v in w.items():
        for row, (prefix, *_rest) in enumerate(ENCODER, start=1):
            if k.startswith(prefix + "."):
                k = f"volume.{index[row]}" + k[len(prefix) :]
        old[k] = v
    assert any(k.startswith("volume.11.") for k in old)
    assert convert_original_state_dict(old, "segdecnet").keys() == (
        convert_original_state_dict(w, "segdecnet").keys()
    )
    for k, v in convert_original_state_dict(old, "segdecnet").items():
        torch.testing.assert_close(v, convert_original_state_dict(w, "segdecnet")[k])


def test_a_missing_key_is_named() -> None:
    w = random_weights("segdecnet++")
    del w["se_module_diff2._se_expand.bias"]
    with pytest.raises(OriginalWeightsError, match=r"missing key 'se_module_diff2\._se_expand"):
        convert_original_state_dict(w, "segdecnet++")


def test_an_unexpected_key_is_named() -> None:
    """segdecnet-up (the seed fork) has no SE layers: a 2023 SegDecNet++ state dict is refused."""
    w = random_weights("segdecnet++")
    with pytest.raises(OriginalWeightsError, match="unexpected key 'conv1_s.weight'"):
        convert_original_state_dict(w, "segdecnet-up")


def test_a_wrong_shape_is_named() -> None:
    w = random_weights("segdecnet")
    w["fc.weight"] = torch.zeros(1, 64, dtype=torch.float64)
    with pytest.raises(OriginalWeightsError, match=r"'fc.weight' has shape \(1, 64\)"):
        convert_original_state_dict(w, "segdecnet")


def test_load_original_from_a_file_with_a_dataparallel_prefix(tmp_path) -> None:
    """A saved ``.pth`` (keys prefixed ``module.``) loads into an eval-mode network."""
    w = {f"module.{k}": v.float() for k, v in random_weights("segdecnet-up").items()}
    path = tmp_path / "best_state_dict.pth"
    torch.save(w, path)
    model = load_original(path, "segdecnet-up", height=64, width=128)
    assert not model.training
    torch.testing.assert_close(
        model.state_dict()["decoder.up2.upsample.weight"], w["module.upsampling2.upsample.weight"]
    )
