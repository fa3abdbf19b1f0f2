"""Train the bundled digits CNN (scikit-learn load_digits, 8x8) and export it to ONNX.

Usage: python examples/digits/train.py [--out DIR] [--epochs N]

Writes DIR/digits_cnn.onnx, DIR/heldout.npz (first 16 held-out images + labels) and
DIR/calib.npz (first 100 training images, keyed by the input name `image`: calibration data
for `edgecc --quantize int8 --calib`), and prints held-out accuracy for torch and for
onnxruntime on the exported model.
Torch is a test/example-only dependency: nothing in edgecc imports this file.
"""
import argparse
import os
import time

import numpy as np
import torch
from torch import nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def conv_bn_relu(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


def make_model():
    return nn.Sequential(
        *conv_bn_relu(1, 16, 3),               # 16 x 8 x 8
        *conv_bn_relu(16, 32, 3, stride=2),    # 32 x 4 x 4
        *conv_bn_relu(32, 32, 3, groups=32),   # depthwise, 32 x 4 x 4
        *conv_bn_relu(32, 64, 1),              # 64 x 4 x 4
        nn.AdaptiveAvgPool2d(1),               # global average pool
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def load_split():
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    return train_test_split(X, y, test_size=0.22, random_state=0, stratify=y)


def accuracy(logits, labels):
    return float((np.argmax(logits, axis=1) == labels).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.manual_seed(0)
    np.random.seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bitwise-reproducible CPU reductions

    Xtr, Xte, ytr, yte = load_split()
    np.savez_compressed(os.path.join(args.out, "calib.npz"), image=Xtr[:100])
    xtr, ttr = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ttr[idx])
            loss.backward()
            opt.step()
        sched.step()
    train_s = time.perf_counter() - t0

    model.eval()
    with torch.no_grad():
        torch_acc = accuracy(model(torch.from_numpy(Xte)).numpy(), yte)
    print(f"trained {args.epochs} epochs on {len(Xtr)} images in {train_s:.1f} s")
    print(f"torch held-out accuracy: {torch_acc:.4f} ({len(Xte)} images)")

    onnx_path = os.path.join(args.out, "digits_cnn.onnx")
    torch.onnx.export(model, torch.from_numpy(Xte[:1]), onnx_path, dynamo=False,
                      opset_version=17, input_names=["image"], output_names=["logits"])
    np.savez(os.path.join(args.out, "heldout.npz"), images=Xte[:16], labels=yte[:16])

    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    ort_logits = np.concatenate([sess.run(None, {"image": Xte[i:i + 1]})[0]
                                 for i in range(len(Xte))])
    ort_acc = accuracy(ort_logits, yte)
    print(f"onnxruntime held-out accuracy: {ort_acc:.4f} ({len(Xte)} images)")
    print(f"wrote {onnx_path}, {os.path.join(args.out, 'heldout.npz')} and "
          f"{os.path.join(args.out, 'calib.npz')}")


if __name__ == "__main__":
    main()
