"""Reference architectures (see /work/shared/MODELS.md) built in torch and exported to ONNX.

Weights are random; BatchNorm statistics are seeded and non-trivial. Usage:
    build("resnet8", "/tmp/resnet8.onnx", seed=0)
"""
import os
import sys
import tempfile
import warnings

import onnx
import torch
from torch import nn

NAMES = ["resnet8", "dscnn", "mobilenetv1_025", "autoencoder", "mobilenetv2_035"]
EDGE_NAMES = ["mobilenetv3_small_050", "shufflenetv2_050", "ghostnet_050"]  # model_zoo_edge.py
INPUT_SHAPES = {
    "resnet8": (1, 3, 32, 32),
    "dscnn": (1, 1, 49, 10),
    "mobilenetv1_025": (1, 3, 96, 96),
    "autoencoder": (1, 640),
    "mobilenetv2_035": (1, 3, 144, 144),
    "mobilenetv3_small_050": (1, 3, 96, 96),
    "shufflenetv2_050": (1, 3, 96, 96),
    "ghostnet_050": (1, 3, 96, 96),
}


def _cbr(cin, cout, k=3, s=1, p=None, groups=1, act=nn.ReLU):
    """Conv (no bias) + BN + activation (act=None for none)."""
    p = (k - 1) // 2 if p is None else p
    layers = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(_cbr(cin, cout, 3, stride), _cbr(cout, cout, 3, act=None))
        self.short = (nn.Conv2d(cin, cout, 1, stride) if (cin != cout or stride != 1)
                      else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.short(x))


def _head(cin, ncls):
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, ncls), nn.Softmax(dim=1)]


def resnet8():
    """MLPerf Tiny IC ResNet-8 (1x3x32x32 -> 10)."""
    return nn.Sequential(_cbr(3, 16), _ResBlock(16, 16, 1), _ResBlock(16, 32, 2),
                         _ResBlock(32, 64, 2), *_head(64, 10))


def dscnn():
    """MLPerf Tiny KWS DS-CNN (1x1x49x10 -> 12)."""
    layers = [_cbr(1, 64, (10, 4), 2, (5, 1))]
    for _ in range(4):
        layers += [_cbr(64, 64, 3, groups=64), _cbr(64, 64, 1)]
    return nn.Sequential(*layers, *_head(64, 12))


def mobilenetv1_025():
    """MLPerf Tiny VWW MobileNetV1 width 0.25 (1x3x96x96 -> 2)."""
    cfg = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + \
          [(256, 2), (256, 1)]
    layers, cin = [_cbr(3, 8, 3, 2)], 8
    for cout, s in cfg:
        layers += [_cbr(cin, cin, 3, s, groups=cin), _cbr(cin, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, *_head(cin, 2))


def autoencoder():
    """MLPerf Tiny AD fully-connected autoencoder (1x640 -> 1x640)."""
    dims = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(128, 640))


def _make_divisible(v, divisor=8, min_value=None):
    """torchvision's channel rounding: nearest multiple, never more than 10% below v."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class _InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = int(round(cin * t))
        layers = [_cbr(cin, hid, 1, act=nn.ReLU6)] if t != 1 else []
        layers += [_cbr(hid, hid, 3, stride, groups=hid, act=nn.ReLU6), _cbr(hid, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


def mobilenetv2_035(width=0.35, ncls=1000):
    """torchvision-style MobileNetV2 width 0.35 (1x3x144x144 -> 1000)."""
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    cin = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    layers = [_cbr(3, cin, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in cfg:
        cout = _make_divisible(c * width)
        for i in range(n):
            layers.append(_InvertedResidual(cin, cout, s if i == 0 else 1, t))
            cin = cout
    layers.append(_cbr(cin, last, 1, act=nn.ReLU6))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, ncls))


_BUILDERS = {"resnet8": resnet8, "dscnn": dscnn, "mobilenetv1_025": mobilenetv1_025,
             "autoencoder": autoencoder, "mobilenetv2_035": mobilenetv2_035}


def _builders():
    import model_zoo_edge
    return dict(_BUILDERS, **model_zoo_edge.BUILDERS)


def make_model(name, seed=0):
    """Torch model `name` (NAMES, or model_zoo_edge's) in eval mode, random weights and seeded
    non-trivial BN statistics."""
    builders = _builders()
    if name not in builders:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(builders)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builders[name]()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_((torch.rand(n, generator=g) + 0.5) * sign)
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


def example_input(name, seed=0):
    """Deterministic N(0, 1) input of INPUT_SHAPES[name]."""
    return torch.randn(INPUT_SHAPES[name], generator=torch.Generator().manual_seed(seed + 2))


def build(name, path, seed=0, keep_bn=False):
    """Export model `name` to ONNX (opset 17, legacy exporter) at `path`; returns path.

    The exporter folds BatchNorm2d into the preceding Conv; keep_bn=True keeps the
    BatchNormalization nodes (inference mode) instead.
    """
    model = make_model(name, seed)
    extra = {"do_constant_folding": False} if keep_bn else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, example_input(name, seed), path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"], **extra)
    return path


def count_macs(onnx_path):
    """MACs of Conv, Gemm and MatMul nodes, using onnx shape inference."""
    g = onnx.shape_inference.infer_shapes(onnx.load(onnx_path)).graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in g.initializer:
        shapes[init.name] = list(init.dims)

    def numel(s):
        r = 1
        for d in s:
            r *= d
        return r

    total = 0
    for node in g.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        out = shapes[node.output[0]]
        if node.op_type == "Conv":
            k = numel(shapes[node.input[1]][1:])  # (C/group) * kH * kW
        else:
            a = shapes[node.input[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if trans_a else a[-1]
        total += numel(out) * k
    return total


if __name__ == "__main__":
    names = sys.argv[1:] or NAMES
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            p = build(name, os.path.join(d, name + ".onnx"))
            print(f"{name:16s} {count_macs(p) / 1e6:8.3f} M MACs {os.path.getsize(p) / 1024:9.1f} KiB")
