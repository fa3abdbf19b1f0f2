"""Three more mobile architectures, written here after timm's and torchvision's definitions
(random weights, non-trivial BatchNorm via model_zoo.make_model): MobileNetV3-Small-0.5 (SE
blocks with hard-sigmoid, hard-swish), ShuffleNetV2-x0.5 (channel split, concat and shuffle)
and GhostNet-0.5 (ghost modules: concat + slice, SE with relu6-based hard-sigmoid). Smaller
inputs and heads than ImageNet's keep them fast under QEMU; every kind of layer is there.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from model_zoo import _cbr, _make_divisible

NCLS = 100


class _SE(nn.Module):
    """Squeeze-excite: avgpool, 1x1 reduce + ReLU, 1x1 expand + gate, scale."""

    def __init__(self, c, rd, gate):
        super().__init__()
        self.reduce, self.expand, self.gate = nn.Conv2d(c, rd, 1), nn.Conv2d(rd, c, 1), gate

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(F.relu(self.reduce(s))))


class _V3Block(nn.Module):
    def __init__(self, cin, k, exp, cout, se, act, stride):
        super().__init__()
        layers = [_cbr(cin, exp, 1, act=act)] if exp != cin else []
        layers.append(_cbr(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(_SE(exp, _make_divisible(exp // 4), nn.Hardsigmoid()))
        layers.append(_cbr(exp, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.res else self.body(x)


def mobilenetv3_small_050(width=0.5):
    """timm mobilenetv3_small_050: (k, expansion, out, SE, activation, stride)."""
    RE, HS = nn.ReLU, nn.Hardswish
    cfg = [(3, 16, 16, True, RE, 2), (3, 72, 24, False, RE, 2), (3, 88, 24, False, RE, 1),
           (5, 96, 40, True, HS, 2), (5, 240, 40, True, HS, 1), (5, 240, 40, True, HS, 1),
           (5, 120, 48, True, HS, 1), (5, 144, 48, True, HS, 1), (5, 288, 96, True, HS, 2),
           (5, 576, 96, True, HS, 1), (5, 576, 96, True, HS, 1)]
    cin = _make_divisible(16 * width)
    layers = [_cbr(3, cin, 3, 2, act=HS)]
    for k, exp, out, se, act, s in cfg:
        cout = _make_divisible(out * width)
        layers.append(_V3Block(cin, k, _make_divisible(exp * width), cout, se, act, s))
        cin = cout
    last = _make_divisible(576 * width)
    return nn.Sequential(*layers, _cbr(cin, last, 1, act=HS), nn.AdaptiveAvgPool2d(1),
                         nn.Conv2d(last, 256, 1), nn.Hardswish(), nn.Flatten(),
                         nn.Linear(256, NCLS))


def _channel_shuffle(x, groups=2):
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class _ShuffleBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(_cbr(cin, cin, 3, stride, groups=cin, act=None),
                                         _cbr(cin, half, 1))
        c2 = cin if stride > 1 else half
        self.branch2 = nn.Sequential(_cbr(c2, half, 1), _cbr(half, half, 3, stride, groups=half,
                                                            act=None), _cbr(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return _channel_shuffle(out)


def shufflenetv2_050():
    """torchvision shufflenet_v2_x0_5: stages of 4, 8, 4 blocks with 48, 96, 192 channels."""
    layers = [_cbr(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 24
    for reps, cout in ((4, 48), (8, 96), (4, 192)):
        for i in range(reps):
            layers.append(_ShuffleBlock(cin, cout, 2 if i == 0 else 1))
            cin = cout
    return nn.Sequential(*layers, _cbr(cin, 1024, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(1024, NCLS))


def _hard_sigmoid(x):
    return F.relu6(x + 3.0) / 6.0


class _Ghost(nn.Module):
    """Ghost module: 1x1 primary conv, a depthwise 3x3 'cheap' conv of it, concat, slice."""

    def __init__(self, cin, cout, relu):
        super().__init__()
        init = math.ceil(cout / 2)
        act = nn.ReLU if relu else None
        self.cout = cout
        self.primary = _cbr(cin, init, 1, act=act)
        self.cheap = _cbr(init, init, 3, groups=init, act=act)

    def forward(self, x):
        p = self.primary(x)
        return torch.cat([p, self.cheap(p)], dim=1)[:, :self.cout]


class _GhostBottleneck(nn.Module):
    def __init__(self, cin, mid, cout, k, stride, se):
        super().__init__()
        self.ghost1 = _Ghost(cin, mid, True)
        self.dw = _cbr(mid, mid, k, stride, groups=mid, act=None) if stride > 1 else None
        self.se = _SE(mid, _make_divisible(mid * se, 4), _hard_sigmoid) if se else None
        self.ghost2 = _Ghost(mid, cout, False)
        self.short = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            _cbr(cin, cin, k, stride, groups=cin, act=None), _cbr(cin, cout, 1, act=None)))

    def forward(self, x):
        y = self.ghost1(x)
        if self.dw is not None:
            y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        return self.ghost2(y) + self.short(x)


def ghostnet_050(width=0.5):
    """timm ghostnet_050: (k, expansion, out, SE ratio, stride) per bottleneck."""
    cfg = [(3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 0.25, 2),
           (5, 120, 40, 0.25, 1), (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1),
           (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1),
           (5, 672, 160, 0.25, 2), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)]
    cin = _make_divisible(16 * width, 4)
    layers = [_cbr(3, cin, 3, 2)]
    for k, exp, out, se, s in cfg:
        cout = _make_divisible(out * width, 4)
        layers.append(_GhostBottleneck(cin, _make_divisible(exp * width, 4), cout, k, s, se))
        cin = cout
    last = _make_divisible(960 * width, 4)
    return nn.Sequential(*layers, _cbr(cin, last, 1), nn.AdaptiveAvgPool2d(1),
                         nn.Conv2d(last, 256, 1), nn.ReLU(), nn.Flatten(), nn.Linear(256, NCLS))


BUILDERS = {"mobilenetv3_small_050": mobilenetv3_small_050, "shufflenetv2_050": shufflenetv2_050,
            "ghostnet_050": ghostnet_050}
