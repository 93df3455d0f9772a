"""The PyTorch twins of convlab's models (src/models/classifier.rs and segmenter.rs): the same
layers in the same order, so that `nn.Sequential`'s names (`<i>.weight`, ...) are the ones
`convlab export --format safetensors` writes and `load_state_dict(..., strict=True)` takes them. PyTorch's default initialisation (Kaiming
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


def _conv_bn(i: int, o: int) -> list:
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o)]


def own() -> nn.Module:
    layers = []
    for i, o in [(1, 32), (32, 32)]:
        layers += _conv_bn(i, o) + [nn.ReLU()]
    layers.append(nn.MaxPool2d(2))
    for i, o in [(32, 64), (64, 64)]:
        layers += _conv_bn(i, o) + [nn.ReLU()]
    layers.append(nn.MaxPool2d(2))
    layers += [nn.Dropout(0.2), nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(),
               nn.Dropout(0.4), nn.Linear(256, 10)]
    return nn.Sequential(*layers)


class SaveSkip(nn.Identity):
    """Keeps the activation for the next `ConcatSkip` or `AddSkip` (convlab's `save_skip`)."""


class ConcatSkip(nn.Identity):
    """`torch.cat([x, skip], dim=1)` with the most recently saved activation."""


class AddSkip(nn.Identity):
    """`x + skip` with the most recently saved activation (a residual connection)."""


class SkipSequential(nn.Sequential):
    """`nn.Sequential` (same names) whose `SaveSkip` / `ConcatSkip` / `AddSkip` layers join a
    U-Net's or a ResNet's skips."""

    def forward(self, x):
        saved = []
        for layer in self:
            if isinstance(layer, SaveSkip):
                saved.append(x)
            elif isinstance(layer, ConcatSkip):
                x = torch.cat([x, saved.pop()], dim=1)
            elif isinstance(layer, AddSkip):
                x = x + saved.pop()
            else:
                x = layer(x)
        return x


def _residual(channels: int) -> list:
    return [SaveSkip()] + _conv_bn_relu(channels, channels, 1) + \
        _conv_bn_relu(channels, channels, 1) + [AddSkip()]


def _residual_stages(first: int, second: int, third: int) -> nn.Module:
    layers = _conv_bn_relu(1, first, 1) + _conv_bn_relu(first, first, 1) + [nn.MaxPool2d(2)]
    layers += _residual(first) + _conv_bn_relu(first, second, 1) + [nn.MaxPool2d(2)]
    layers += _residual(second) + _conv_bn_relu(second, third, 1)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(third, 10)]
    return SkipSequential(*layers)


def res() -> nn.Module:
    return _residual_stages(32, 64, 128)


def wres() -> nn.Module:
    return _residual_stages(64, 128, 256)


UNET_CHANNELS = [16, 32, 64, 128, 256]


def unet() -> nn.Module:
    layers, previous = [], 3
    for stage, channels in enumerate(UNET_CHANNELS):
        layers += _conv_bn_relu(previous, channels, 2) + _conv_bn_relu(channels, channels, 1)
        if stage + 1 < len(UNET_CHANNELS):
            layers.append(SaveSkip())
        previous = channels
    for shallow, deep in reversed(list(zip(UNET_CHANNELS, UNET_CHANNELS[1:]))):
        layers += _up_bn_relu(deep, shallow) + [ConcatSkip()]
        layers += _conv_bn_relu(2 * shallow, shallow, 1)
    top = UNET_CHANNELS[0]
    layers += _up_bn_relu(top, top) + [nn.Conv2d(top, 5, 1)]
    return SkipSequential(*layers)


NETWORKS = {"base": base, "wide": wide, "own": own, "res": res, "wres": wres, "fcn": fcn, "unet": unet}
SEGMENTERS = {"fcn", "unet"}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    for name, make in NETWORKS.items():
        print(name, parameter_count(make()))
