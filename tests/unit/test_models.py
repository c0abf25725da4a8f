"""Unit tests for inpca.models: shapes, parameter counts vs the paper, errors, determinism."""

from __future__ import annotations

import pytest
import torch

from inpca.errors import ConfigError
from inpca.models import ARCHITECTURES, build_model, count_parameters

CIFAR = (3, 32, 32)
DIGITS = (1, 8, 8)

# Paper section 6 table (CIFAR-10 shapes, 10 classes).
PAPER_COUNTS = [
    ({"name": "allcnn"}, 399_486),
    ({"name": "fc"}, 3_837_066),
    ({"name": "fc", "widths": [1024, 512, 256, 128]}, 3_837_066),
    ({"name": "wrn", "depth": 10, "widen": 4, "base": 8}, 300_226),
    ({"name": "wrn", "depth": 16, "widen": 4, "base": 64}, 43_890_122),
    ({"name": "convmixer", "dim": 256, "depth": 8, "kernel": 5, "patch": 2}, 594_186),
    ({"name": "vit", "patch": 4, "dim": 512, "depth": 6, "heads": 8, "mlp_dim": 512, "head_dim": 64}, 9_523_722),
]

# Small nets for digits (1x8x8) and quick CIFAR forward passes.
SMALL = {
    "fc": {"name": "fc", "width": 32, "depth": 2},
    "fc_widths": {"name": "fc", "widths": [64, 32]},
    "allcnn": {"name": "allcnn", "width": 0.25},
    "wrn": {"name": "wrn", "depth": 10, "widen": 2, "base": 4},
    "convmixer": {"name": "convmixer", "dim": 32, "depth": 2, "kernel": 3, "patch": 2},
    "vit_p2": {"name": "vit", "patch": 2, "dim": 32, "depth": 2, "heads": 2, "mlp_dim": 32, "head_dim": 8},
    "vit_p4": {"name": "vit", "patch": 4, "dim": 32, "depth": 1, "heads": 4, "mlp_dim": 64, "head_dim": 8},
}


@pytest.mark.parametrize("arch,expected", PAPER_COUNTS, ids=lambda v: str(v) if isinstance(v, int) else v["name"])
def test_parameter_counts_match_paper(arch, expected):
    model = build_model(arch, CIFAR, 10)
    assert count_parameters(model) == expected


def test_defaults_are_the_paper_models():
    counts = {name: count_parameters(build_model({"name": name}, CIFAR, 10)) for name in ARCHITECTURES}
    assert counts == {
        "fc": 3_837_066,
        "allcnn": 399_486,
        "wrn": 300_226,
        "convmixer": 594_186,
        "vit": 9_523_722,
    }


@pytest.mark.parametrize(
    "arch",
    [
        {"name": "fc"},
        {"name": "allcnn"},
        {"name": "wrn"},
        {"name": "convmixer"},
        {"name": "vit"},
    ],
    ids=lambda a: a["name"],
)
def test_cifar_forward_shape(arch):
    torch.manual_seed(0)
    model = build_model(arch, CIFAR, 10)
    out = model(torch.randn(2, *CIFAR))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, *CIFAR)).shape == (1, 10)


@pytest.mark.parametrize("key", sorted(SMALL))
def test_digits_forward_shape(key):
    torch.manual_seed(0)
    model = build_model(SMALL[key], DIGITS, 10)
    out = model(torch.randn(4, *DIGITS))
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("key", sorted(SMALL))
def test_small_nets_on_cifar_shape_and_other_class_counts(key):
    torch.manual_seed(0)
    model = build_model(SMALL[key], CIFAR, 7)
    assert model(torch.randn(2, *CIFAR)).shape == (2, 7)


def test_fc_on_vector_input():
    model = build_model({"name": "fc", "widths": [16]}, (20,), 5)
    assert model(torch.randn(3, 20)).shape == (3, 5)
    assert count_parameters(model) == 20 * 16 + 16 + 16 * 5 + 5
    # width + depth shorthand == explicit widths
    a = build_model({"name": "fc", "width": 16, "depth": 3}, (20,), 5)
    b = build_model({"name": "fc", "widths": [16, 16, 16]}, (20,), 5)
    assert count_parameters(a) == count_parameters(b)


def test_fc_layer_order_and_affine_free_bn():
    model = build_model({"name": "fc", "widths": [8]}, (4,), 3)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Flatten", "Linear", "ReLU", "BatchNorm1d", "Linear"]
    assert not model.net[3].affine


def test_allcnn_width_multiplier_channels():
    model = build_model({"name": "allcnn", "width": 0.5}, DIGITS, 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 48), (48, 48), (48, 72), (72, 72), (72, 10)]


def test_wrn_stage_widths():
    model = build_model({"name": "wrn", "depth": 16, "widen": 4, "base": 64}, CIFAR, 10)
    assert model.conv1.out_channels == 64
    assert [layer[-1].conv2.out_channels for layer in (model.layer1, model.layer2, model.layer3)] == [256, 512, 1024]
    assert len(model.layer1) == 2  # (16 - 4) / 6 blocks per stage
    assert all(not m.affine for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("key", ["fc", "allcnn", "wrn", "convmixer", "vit_p2"])
def test_channels_last_and_bf16_autocast(key):
    torch.manual_seed(0)
    model = build_model(SMALL[key], DIGITS, 10).to(memory_format=torch.channels_last)
    x = torch.randn(4, *DIGITS).to(memory_format=torch.channels_last)
    ref = build_model(SMALL[key], DIGITS, 10)
    ref.load_state_dict(model.state_dict())
    model.eval()
    ref.eval()
    with torch.no_grad():
        out = model(x)
        assert torch.allclose(out, ref(x.contiguous()), atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf = model(x)
    assert out_bf.shape == (4, 10)
    assert torch.isfinite(out_bf.float()).all()
    # training step under autocast
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), torch.arange(4))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("key", ["fc", "allcnn", "wrn", "convmixer", "vit_p2"])
def test_same_seed_same_weights(key):
    def weights(seed):
        torch.manual_seed(seed)
        return build_model(SMALL[key], DIGITS, 10).state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1)


@pytest.mark.parametrize(
    "arch,shape,field",
    [
        ({"name": "resnet"}, CIFAR, "name"),
        ({"width": 1}, CIFAR, "name"),
        ({"name": "allcnn", "widht": 1.0}, CIFAR, "widht"),
        ({"name": "allcnn", "width": 0}, CIFAR, "width"),
        ({"name": "allcnn", "width": "big"}, CIFAR, "width"),
        ({"name": "fc", "widths": [10], "width": 10, "depth": 2}, CIFAR, "widths"),
        ({"name": "fc", "width": 10}, CIFAR, "depth"),
        ({"name": "fc", "widths": [10, 0]}, CIFAR, "widths"),
        ({"name": "fc", "widths": 10}, CIFAR, "widths"),
        ({"name": "wrn", "depth": 12}, CIFAR, "depth"),
        ({"name": "wrn", "widen": 2.5}, CIFAR, "widen"),
        ({"name": "wrn", "base": True}, CIFAR, "base"),
        ({"name": "convmixer", "patch": 16}, DIGITS, "patch"),
        ({"name": "convmixer", "kernel": 0}, CIFAR, "kernel"),
        ({"name": "vit", "patch": 3}, CIFAR, "patch"),
        ({"name": "vit", "heads": -1}, CIFAR, "heads"),
        ({"name": "allcnn"}, (20,), "allcnn"),
        ({"name": "vit"}, (20,), "vit"),
    ],
)
def test_bad_arch_raises_config_error_naming_field(arch, shape, field):
    with pytest.raises(ConfigError, match=field) as info:
        build_model(arch, shape, 10)
    assert "\n" not in str(info.value)


def test_unknown_name_lists_allowed_values():
    with pytest.raises(ValueError) as e:
        build_model({"name": "mlp"}, CIFAR, 10)
    msg = str(e.value)
    assert "name" in msg and all(n in msg for n in ARCHITECTURES)


def test_missing_size_params_take_the_schema_defaults():
    """The schema is the one source of truth: {allcnn} is the paper's width-1 net."""
    a = build_model({"name": "allcnn"}, CIFAR, 10)
    b = build_model({"name": "allcnn", "width": 1.0}, CIFAR, 10)
    assert count_parameters(a) == count_parameters(b) == 399_486


def test_count_parameters_counts_all_parameters_not_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    assert count_parameters(model) == 3 * 2 + 2 + 2 + 2
