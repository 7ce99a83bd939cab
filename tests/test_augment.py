import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from sslgeo_lib.training.augment import PARAM_NAMES, apply, augment, color, crop_flip, policy, sample_params


@pytest.fixture
def x():
    return torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _identity(n, **changes):
    p = {"area": 1.0, "center_x": 0.5, "center_y": 0.5, "aspect": 1.0, "flip": 0.0, "jitter": 0.0,
         "brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0, "grayscale": 0.0}
    p.update(changes)
    return {k: torch.full((n,), float(v)) for k, v in p.items()}


def test_strength_zero_is_the_identity_bit_for_bit(x):
    views, params = augment(x, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(views, x) and views.data_ptr() != x.data_ptr()
    assert set(params) == set(PARAM_NAMES)
    for name, value in _identity(16).items():
        assert torch.equal(params[name], value), name


def test_policy_follows_the_claims_spec():
    assert policy(0.5) == pytest.approx({"min_area": 0.54, "log_aspect": 0.5 * math.log(4 / 3), "flip_p": 0.25,
                                         "jitter_p": 0.8, "bcs": 0.4, "hue": 0.1, "gray_p": 0.1})
    assert policy(1.5)["min_area"] == 0.08 and policy(1.5)["hue"] == pytest.approx(0.3)
    assert policy(3.0)["hue"] == 0.5 and policy(3.0)["gray_p"] == pytest.approx(0.2)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="strength must be a finite number >= 0"):
            policy(bad)


def test_knob_v2_is_monotone_and_simclr_at_one():
    grid = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    pols = [policy(s) for s in grid]
    for key in ("log_aspect", "flip_p", "jitter_p", "bcs", "hue", "gray_p"):  # every range widens with s
        assert all(a[key] <= b[key] for a, b in zip(pols, pols[1:])), key
    assert all(a["min_area"] >= b["min_area"] for a, b in zip(pols, pols[1:]))
    simclr = {"min_area": 0.08, "log_aspect": math.log(4 / 3), "flip_p": 0.5, "jitter_p": 0.8, "gray_p": 0.2}
    for s in (1.0, 1.5, 2.0):  # SimCLR's geometric policy and probabilities (App. A); colour scales on
        assert {k: policy(s)[k] for k in simclr} == pytest.approx(simclr)
    assert policy(1.0)["bcs"] == pytest.approx(0.8) and policy(1.0)["hue"] == pytest.approx(0.2)
    zero = policy(0.0)
    assert zero["log_aspect"] == zero["flip_p"] == zero["bcs"] == zero["hue"] == zero["gray_p"] == 0


@pytest.mark.parametrize("s", [0.25, 1.0, 1.5])
def test_drawn_parameters_stay_in_their_ranges(s):
    p = sample_params(20000, s, torch.Generator().manual_seed(0))
    pol = policy(s)
    assert p["area"].min() >= pol["min_area"] - 1e-6 and p["area"].max() <= 1 + 1e-6
    w, h = torch.sqrt(p["area"] * p["aspect"]), torch.sqrt(p["area"] / p["aspect"])
    assert (w <= 1 + 1e-6).all() and (h <= 1 + 1e-6).all()
    assert ((p["center_x"] - w / 2) >= -1e-6).all() and ((p["center_x"] + w / 2) <= 1 + 1e-6).all()
    jittered = p["jitter"] > 0
    assert p["hue"].abs().max() <= pol["hue"] + 1e-6
    assert (p["brightness"][~jittered] == 1).all() and (p["hue"][~jittered] == 0).all()
    assert p["brightness"][jittered].min() >= max(0, 1 - pol["bcs"]) - 1e-6
    assert p["flip"].mean() == pytest.approx(pol["flip_p"], abs=0.02)
    assert p["aspect"].log().abs().max() <= pol["log_aspect"] + 1e-5
    assert p["jitter"].mean() == pytest.approx(0.8, abs=0.02)
    assert p["grayscale"].mean() == pytest.approx(pol["gray_p"], abs=0.02)


def test_seeded_and_per_sample(x):
    a, pa = augment(x, 1.0, torch.Generator().manual_seed(7))
    b, pb = augment(x, 1.0, torch.Generator().manual_seed(7))
    c, _ = augment(x, 1.0, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(a, c)
    assert pa["area"].unique().numel() == 16  # one draw per sample, not per batch


def test_identity_parameters_leave_images_unchanged(x):
    torch.testing.assert_close(apply(x, _identity(16)), x, atol=1e-5, rtol=0)


def test_flip_is_a_mirror(x):
    torch.testing.assert_close(crop_flip(x, _identity(16, flip=1)), torch.flip(x, dims=[3]), atol=1e-5, rtol=0)


def test_crop_of_a_quarter_is_an_upsampled_corner():
    # top-left 16x16 corner made of 4x4 constant blocks; cropping it (area 1/4) and resizing x2 gives
    # 8x8 blocks whose 6x6 interiors (away from bilinear seams) equal the block values exactly
    base = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x = torch.zeros(2, 3, 32, 32)
    x[:, :, :16, :16] = base.repeat_interleave(4, 2).repeat_interleave(4, 3)
    out = crop_flip(x, _identity(2, area=0.25, center_x=0.25, center_y=0.25))
    for i in range(4):
        for j in range(4):
            block = out[:, :, 8 * i + 1:8 * i + 7, 8 * j + 1:8 * j + 7]
            torch.testing.assert_close(block, base[:, :, i:i + 1, j:j + 1].expand_as(block), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,value,reference", [
    ("brightness", 1.4, lambda x: TF.adjust_brightness(x, 1.4)),
    ("contrast", 0.5, lambda x: TF.adjust_contrast(x, 0.5)),
    ("saturation", 1.7, lambda x: TF.adjust_saturation(x, 1.7)),
    ("hue", -0.3, lambda x: TF.adjust_hue(x, -0.3)),
    ("grayscale", 1.0, lambda x: TF.rgb_to_grayscale(x, num_output_channels=3)),
])
def test_colour_ops_match_torchvision(x, name, value, reference):
    torch.testing.assert_close(color(x, _identity(16, **{name: value})), reference(x), atol=2e-5, rtol=0)


def test_bad_inputs(x):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        augment(x[0], 1.0)
    with pytest.raises(TypeError, match="float images"):
        augment((x * 255).to(torch.uint8), 1.0)
    with pytest.raises(ValueError, match="strength"):
        augment(x, -1.0)


def test_hue_shift_of_gray_pixels_and_full_turns(x):
    from sslgeo_lib.training.augment import _shift_hue

    gray = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(_shift_hue(gray, torch.full((16,), 0.3)), gray)  # no hue to rotate
    torch.testing.assert_close(_shift_hue(x, torch.full((16,), 1.0)), x, atol=2e-6, rtol=0)  # a full turn
    per_sample = torch.linspace(-0.5, 0.5, 16)
    expected = torch.stack([TF.adjust_hue(x[i], float(per_sample[i])) for i in range(16)])
    torch.testing.assert_close(_shift_hue(x, per_sample), expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_each_family_changes_only_its_own_operations(strength):
    from sslgeo_lib.training.augment import FAMILIES, apply, color, crop_flip

    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = {f: augment(x, strength, torch.Generator().manual_seed(3), f) for f in FAMILIES}
    # the draws are the same whatever the family; each family's parameters are its own or the identity's
    full, crop, col, flip = (out[f][1] for f in ("all", "crop", "color", "flip"))
    assert torch.equal(crop["area"], full["area"]) and torch.equal(crop["aspect"], full["aspect"])
    assert (crop["flip"] == 0).all() and (crop["jitter"] == 0).all() and (crop["grayscale"] == 0).all()
    assert (col["area"] == 1).all() and (col["flip"] == 0).all() and torch.equal(col["jitter"], full["jitter"])
    assert (flip["area"] == 1).all() and (flip["jitter"] == 0).all() and 0 < flip["flip"].mean() < 1
    # the views: one family's operation and nothing else, exactly
    assert torch.equal(out["crop"][0], crop_flip(x, crop))
    assert torch.equal(out["color"][0], color(x, col))
    mirrored = flip["flip"].view(-1, 1, 1, 1) > 0
    assert torch.equal(out["flip"][0], torch.where(mirrored, x.flip(-1), x))
    assert torch.equal(out["all"][0], apply(x, full))
    assert policy(strength, "all") == policy(strength)


def test_an_unknown_family_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match="unknown augmentation family 'colour'; accepted: all, crop, color, flip"):
        policy(1.0, "colour")
