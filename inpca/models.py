"""Network architectures of the grid (Mao et al., PNAS 2024, section 6 of the method spec).

``build_model(arch, input_shape, num_classes)`` builds one grid entry's architecture, where
``arch = {"name": ..., **size params}``:

=========== ======================================================= ===========================
name        size params (defaults = the paper's CIFAR-10 model)      CIFAR-10 parameter count
=========== ======================================================= ===========================
fc          ``widths=[1024, 512, 256, 128]`` or ``width`` + ``depth`` 3,837,066
allcnn      ``width=1.0`` (channel multiplier: 96/144 channels)      399,486
wrn         ``depth=10, widen=4, base=8`` (wr-10-4-8)                300,226
            ``depth=16, widen=4, base=64`` (wr-16-4-64)              43,890,122
convmixer   ``dim=256, depth=8, kernel=5, patch=2``                  594,186
vit         ``patch=4, dim=512, depth=6, heads=8, mlp_dim=512,       9,523,722
            head_dim=64``
=========== ======================================================= ===========================

All six counts equal the paper's table exactly; the definitions follow the authors' code
(github.com/grasp-lyrl/low-dimensional-deepnets, ``networks/``), re-written here:

* input channels/size come from ``input_shape`` so the same nets run on 1x8x8 digits;
* the fixed ``AvgPool2d(8)`` of All-CNN is an adaptive average pool (identical on 32x32 input);
* dropout (always 0 in the paper) is omitted;
* default PyTorch initialisation everywhere (the paper's "normal" corner); the ViT's position
  embedding and cls token are ``randn`` as in the authors' code.

Every model returns logits of shape (N, num_classes), works on channels_last inputs and under
``torch.autocast``; with the same ``torch.manual_seed`` it builds identical weights.
"""

from __future__ import annotations

import math
import torch
import torch.nn as nn

# ARCHITECTURES: the names the schema lists (their size parameters and defaults are there too)
from .config import ARCHITECTURES, check_arch_fits, complete_section

__all__ = ["ARCHITECTURES", "build_model", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; BatchNorm running stats are buffers, not counted)."""
    return int(sum(p.numel() for p in model.parameters()))


# --------------------------------------------------------------------------------------------
# fc
# --------------------------------------------------------------------------------------------


class FC(nn.Module):
    """MLP: flatten, then per hidden layer Linear(bias) -> ReLU -> BatchNorm1d(affine=False), then
    Linear to the classes (the order of the authors' ``fcnn`` at HEAD).  CIFAR-10 default
    3072-1024-512-256-128-10: 3,837,066 parameters."""

    def __init__(self, in_features: int, widths: list[int], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for wdt in widths:
            layers += [nn.Linear(d, wdt), nn.ReLU(), nn.BatchNorm1d(wdt, affine=False)]
            d = wdt
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------------------------
# allcnn
# --------------------------------------------------------------------------------------------


def _conv_relu_bn(ci: int, co: int, k: int, stride: int = 1, pad: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, k, stride=stride, padding=pad), nn.ReLU(), nn.BatchNorm2d(co))


class AllCNN(nn.Module):
    """All-CNN: conv3x3(C->c1) - conv3x3 s2(c1->c1) - conv3x3(c1->c2) - conv3x3 s2(c2->c2) -
    conv1x1(c2->classes) - global average pool.  Every conv (bias) is followed by ReLU then
    BatchNorm2d (affine, as the authors' code), the last one too, so the logits are the pooled BN
    output.  c1 = round(96*width), c2 = round(144*width).  CIFAR-10, width 1: 399,486."""

    def __init__(self, in_channels: int, num_classes: int, c1: int = 96, c2: int = 144):
        super().__init__()
        self.features = nn.Sequential(
            _conv_relu_bn(in_channels, c1, 3, 1, 1),
            _conv_relu_bn(c1, c1, 3, 2, 1),
            _conv_relu_bn(c1, c2, 3, 1, 1),
            _conv_relu_bn(c2, c2, 3, 2, 1),
            _conv_relu_bn(c2, num_classes, 1, 1, 0),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)  # == AvgPool2d(8) on 32x32 input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


# --------------------------------------------------------------------------------------------
# wrn
# --------------------------------------------------------------------------------------------


class _WideBasic(nn.Module):
    """Pre-activation block of the authors' wide_resnet: BN(affine=False)-ReLU-conv3x3 (stride 1)
    -BN-ReLU-conv3x3 (stride s), convs without bias; shortcut = 1x1 conv (stride s, with bias) on
    the raw input when the shape changes, identity otherwise."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, affine=False)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, affine=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=stride, padding=1, bias=False)
        self.relu = nn.ReLU()
        if stride != 1 or cin != cout:
            self.shortcut: nn.Module = nn.Conv2d(cin, cout, 1, stride=stride, bias=True)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """Wide-ResNet ``depth`` (6n+4), ``widen`` k, ``base`` b: stages b / b*k / 2*b*k / 4*b*k with
    n blocks per stage (strides 1, 2, 2), final BN(affine=False)-ReLU, global average pool,
    Linear.  wr-10-4-8: 300,226 parameters; wr-16-4-64: 43,890,122 (CIFAR-10)."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, widen: int, base: int):
        super().__init__()
        n = (depth - 4) // 6
        stages = [base, base * widen, 2 * base * widen, 4 * base * widen]
        self.conv1 = nn.Conv2d(in_channels, stages[0], 3, padding=1, bias=False)
        layers = []
        cin = stages[0]
        for cout, stride in zip(stages[1:], (1, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(_WideBasic(cin, cout, s))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn = nn.BatchNorm2d(stages[3], affine=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(stages[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = self.pool(self.relu(self.bn(out)))
        return self.linear(torch.flatten(out, 1))


# --------------------------------------------------------------------------------------------
# convmixer
# --------------------------------------------------------------------------------------------


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class ConvMixer(nn.Module):
    """ConvMixer (Trockman & Kolter) with BN: patch conv (k=s=patch) - GELU - BN, then ``depth``
    times [residual(depthwise conv k, 'same' - GELU - BN) - pointwise conv - GELU - BN], global
    average pool, Linear.  256/8/5/2 on CIFAR-10: 594,186 parameters."""

    def __init__(self, in_channels: int, num_classes: int, dim: int, depth: int, kernel: int, patch: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, dim, patch, stride=patch), nn.GELU(), nn.BatchNorm2d(dim)]
        for _ in range(depth):
            layers += [
                _Residual(
                    nn.Sequential(
                        nn.Conv2d(dim, dim, kernel, groups=dim, padding="same"), nn.GELU(), nn.BatchNorm2d(dim)
                    )
                ),
                nn.Conv2d(dim, dim, 1),
                nn.GELU(),
                nn.BatchNorm2d(dim),
            ]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------------------------
# vit
# --------------------------------------------------------------------------------------------


class _Attention(nn.Module):
    """Multi-head self-attention as the authors' (lucidrains) ViT: qkv Linear without bias, output
    Linear with bias (skipped when heads == 1 and head_dim == dim).  Written with explicit
    matmul/softmax (deterministic; identical maths to scaled_dot_product_attention)."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim) if not (heads == 1 and head_dim == dim) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.to_qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (b, h, n, d)
        attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)
        out = torch.matmul(attn.to(v.dtype), v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class ViT(nn.Module):
    """Vision Transformer as the authors' ``networks/vit.py`` (lucidrains' vit-pytorch): patches
    flattened in (p1 p2 c) order -> Linear(patch_dim, dim), learnable cls token and position
    embedding (randn), ``depth`` pre-norm blocks x += Attn(LN(x)); x += MLP(LN(x)) with MLP
    Linear-GELU-Linear, then LayerNorm + Linear on the cls token.  CIFAR-10 with patch 4, dim 512,
    depth 6, 8 heads x 64, MLP 512: 9,523,722 parameters."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        head_dim: int,
    ):
        super().__init__()
        c, h, w = input_shape
        self.patch = patch
        num_patches = (h // patch) * (w // patch)
        self.patch_embed = nn.Linear(c * patch * patch, dim)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layers = nn.ModuleList()
        for _ in range(depth):
            mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
            self.layers.append(
                nn.ModuleList([_PreNorm(dim, _Attention(dim, heads, head_dim)), _PreNorm(dim, mlp)])
            )
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch
        # 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'; reshape copies if x is channels_last.
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(b, -1, -1).to(x.dtype), x], dim=1)
        x = x + self.pos_embedding[:, : x.shape[1]].to(x.dtype)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.head(x[:, 0])


# --------------------------------------------------------------------------------------------
# build_model
# --------------------------------------------------------------------------------------------

def build_model(arch: dict, input_shape: tuple, num_classes: int) -> nn.Module:
    """Build the network for one grid entry ``arch = {"name": ..., **size params}``.

    ``input_shape`` is the per-sample shape ((C, H, W) or (D,)); ``num_classes`` the number of
    logits. The schema is the one source of truth for the size params: missing ones take its
    defaults (the paper's CIFAR-10 nets), and an unknown name, an unknown key or a bad value
    raises :class:`~inpca.errors.ConfigError` naming it, exactly as the study's config does. fc
    takes either ``widths`` (the hidden widths) or ``width`` + ``depth`` (``depth`` layers of
    ``width`` units), not both.
    """
    arch = complete_section("arch", arch)
    input_shape = tuple(int(s) for s in input_shape)
    check_arch_fits(arch, input_shape)
    name = arch["name"]
    if name == "fc":
        return FC(math.prod(input_shape), arch["widths"], num_classes)
    c, h, w = input_shape
    if name == "allcnn":
        return AllCNN(c, num_classes, max(1, round(96 * arch["width"])), max(1, round(144 * arch["width"])))
    if name == "wrn":
        return WideResNet(c, num_classes, arch["depth"], arch["widen"], arch["base"])
    if name == "convmixer":
        return ConvMixer(c, num_classes, arch["dim"], arch["depth"], arch["kernel"], arch["patch"])
    return ViT((c, h, w), num_classes, arch["patch"], arch["dim"], arch["depth"], arch["heads"], arch["mlp_dim"],
               arch["head_dim"])
