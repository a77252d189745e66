"""The paper's four float architectures (LeNet-300, LeNet-5, VGG-16, ResNet-18), as in its reference code.

All batch norms have no learnable parameters (``affine=False``, the paper's "BN with no learnable
parameters"), so every parameter is a Linear/Conv weight or bias, i.e. exactly what gets quantized. Quantization
itself is done elsewhere (by replacing Linear/Conv weights); these are plain ``nn.Module``s.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# dataset -> (in_channels, image size, num_classes)
DATASET_SPECS: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 10),
    "fashion-mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "tinyimagenet": (3, 64, 200),
}


class LeNet300(nn.Module):
    """784-300-100-10 MLP: Linear → BN → ReLU, twice, then Linear. Input (N, 1, 28, 28) or (N, 784) → (N, 10).

    The reference code uses affine BN here; we follow the paper (no learnable BN parameters).
    """

    def __init__(self, num_classes: int = 10, in_features: int = 784):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, 300),
            nn.BatchNorm1d(300, affine=False),
            nn.ReLU(),
            nn.Linear(300, 100),
            nn.BatchNorm1d(100, affine=False),
            nn.ReLU(),
            nn.Linear(100, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet5(nn.Module):
    """conv 20@5×5 → BN → ReLU → pool2 → conv 50@5×5 → BN → ReLU → pool2 → FC 500 → BN → ReLU → FC 10.

    Input (N, in_channels, S, S), S = 28 for MNIST (feature map 50@4×4) → (N, num_classes).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5),
            nn.BatchNorm2d(20, affine=False),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5),
            nn.BatchNorm2d(50, affine=False),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(50 * side * side, 500),
            nn.BatchNorm1d(500, affine=False),
            nn.ReLU(),
            nn.Linear(500, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Module):
    """VGG-16 "adapted for CIFAR" (kuangliu/pytorch-cifar), as the reference code's VGG.

    13 conv 3×3 (bias) → BN → ReLU with 5 max-pools, then the classifier of the reference code:
    FC 512→512 → BN → ReLU → FC 512→512 → BN → ReLU → FC 512→num_classes (no dropout, biases on).
    ``first_stride=2`` on the first conv for TinyImageNet (reference code). Input (N, in_channels, 32, 32)
    (or 64×64 with ``first_stride=2``) → (N, num_classes); a final adaptive average pool (a no-op on the 1×1
    map the reference sizes give) lets other sizes through.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, first_stride: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        stride = first_stride
        for v in VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [nn.Conv2d(in_channels, v, 3, stride=stride, padding=1), nn.BatchNorm2d(v, affine=False)]
            layers.append(nn.ReLU())
            in_channels, stride = v, 1
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512, 512),
            nn.BatchNorm1d(512, affine=False),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.BatchNorm1d(512, affine=False),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two conv 3×3 (no bias) + BN, identity or 1×1-conv + BN shortcut. (N, c_in, H, W) → (N, c_out, H/s, W/s)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, affine=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, affine=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes, affine=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (kuangliu/pytorch-cifar): conv 3×3 64 → BN → ReLU, BasicBlocks [2, 2, 2, 2] at
    64/128/256/512 channels, global average pool, Linear 512 → num_classes (with bias).

    Input (N, in_channels, 32, 32) → (N, num_classes); TinyImageNet: 64×64 input with ``first_stride=2``
    (reference code), which gives the same 4×4 final map. The adaptive pool accepts any input size.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, first_stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=first_stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, affine=False)
        layers: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)]
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


MODELS: dict[str, type[nn.Module]] = {"lenet300": LeNet300, "lenet5": LeNet5, "vgg16": VGG16, "resnet18": ResNet18}


def build_model(name: str, dataset: str) -> nn.Module:
    """Model ``name`` (a key of ``MODELS``) sized for ``dataset`` (a key of ``DATASET_SPECS``).

    Sets num_classes and in_channels; LeNets get the flattened/feature-map size of the dataset's images;
    VGG16/ResNet18 use first_stride=2 on 64×64 TinyImageNet. PyTorch's default init: call
    ``init_reference`` for the reference code's init.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {tuple(MODELS)}")
    if dataset not in DATASET_SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(DATASET_SPECS)}")
    channels, size, classes = DATASET_SPECS[dataset]
    if name == "lenet300":
        return LeNet300(classes, channels * size * size)
    if name == "lenet5":
        return LeNet5(classes, channels, size)
    return MODELS[name](classes, channels, first_stride=2 if size == 64 else 1)


@torch.no_grad()
def init_reference(model: nn.Module) -> nn.Module:
    """The reference code's ``init_weights(xavier=True)``, in place: every parameter with ≥ 2 dims
    (Linear/Conv weights) gets ``xavier_uniform_``, every 1-D one (biases) Normal(0, 0.1). Returns ``model``.

    (The reference applies it to the d-times expanded u-space tensors, so its fan_out includes d; a quantizing
    wrapper that wants that exactly must init its own tensors.)
    """
    for p in model.parameters():
        if p.dim() >= 2:
            nn.init.xavier_uniform_(p)
        else:
            nn.init.normal_(p, 0.0, 0.1)
    return model
