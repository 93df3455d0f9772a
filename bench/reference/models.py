"""The PyTorch twins of convlab's `base`, `wide` and `fcn` (src/models/classifier.rs and
segmenter.rs): the same layers in the same order. PyTorch's default initialisation (Kaiming
uniform with a = sqrt(5), biases uniform in +-1/sqrt(fan_in)) is the one burn's defaults copy.
`compare.py` checks that the parameter counts agree with convlab's."""

import torch
from torch import nn


def base() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def wide() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.LeakyReLU(0.01), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.LeakyReLU(0.01), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 7 * 7, 256), nn.LeakyReLU(0.01), nn.Linear(256, 10),
    )


def _conv_bn_relu(i: int, o: int, stride: int) -> list:
    return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]


def _up_bn_relu(i: int, o: int) -> list:
    return [nn.ConvTranspose2d(i, o, 4, stride=2, padding=1), nn.BatchNorm2d(o), nn.ReLU()]


def fcn() -> nn.Module:
    layers = _conv_bn_relu(3, 32, 1)
    for i, o in [(32, 64), (64, 128), (128, 256)]:
        layers += _conv_bn_relu(i, o, 2)
    for i, o in [(256, 128), (128, 64), (64, 32)]:
        layers += _up_bn_relu(i, o)
    layers += [nn.Conv2d(32, 32, 3, padding=1), nn.Conv2d(32, 5, 1)]
    return nn.Sequential(*layers)


NETWORKS = {"base": base, "wide": wide, "fcn": fcn}
SEGMENTERS = {"fcn"}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    for name, make in NETWORKS.items():
        print(name, parameter_count(make()))
