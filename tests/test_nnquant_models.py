"""Float architectures: output shapes, parameter-free BN, exact LeNet parameter counts, reference init."""

import pytest
import torch
import torch.nn as nn

from nnquant.models import MODELS, VGG16, LeNet5, LeNet300, ResNet18, build_model, init_reference


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("model", "shape", "classes"),
    [
        (LeNet300(), (2, 1, 28, 28), 10),
        (LeNet5(), (2, 1, 28, 28), 10),
        (VGG16(), (2, 3, 32, 32), 10),
        (ResNet18(), (2, 3, 32, 32), 10),
        (ResNet18(num_classes=200, first_stride=2), (2, 3, 64, 64), 200),
        (VGG16(num_classes=200, first_stride=2), (2, 3, 64, 64), 200),
    ],
)
def test_forward_shape_and_parameter_free_bn(model, shape, classes):
    torch.manual_seed(0)
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], classes)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(not m.affine and not list(m.parameters()) for m in bns)


def test_lenet_parameter_counts():
    assert _n_params(LeNet300()) == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10 == 266_610
    lenet5 = 20 * 25 + 20 + 50 * 20 * 25 + 50 + 800 * 500 + 500 + 500 * 10 + 10
    assert _n_params(LeNet5()) == lenet5 == 431_080


def test_layer_structure():
    vgg, resnet = VGG16(), ResNet18()
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 13
    assert sum(isinstance(m, nn.Linear) for m in vgg.modules()) == 3
    convs = [m for m in resnet.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and sum(m.kernel_size == (1, 1) for m in convs) == 3  # 3 shortcut convs
    assert all(m.bias is None for m in convs) and resnet.linear.bias is not None
    assert all(m.bias is not None for m in vgg.modules() if isinstance(m, nn.Conv2d | nn.Linear))


@pytest.mark.parametrize(
    ("dataset", "shape", "classes"),
    [("mnist", (2, 1, 28, 28), 10), ("cifar100", (2, 3, 32, 32), 100), ("tinyimagenet", (2, 3, 64, 64), 200)],
)
def test_build_model(dataset, shape, classes):
    for name in ("lenet300", "lenet5", "resnet18") if dataset != "cifar100" else ("vgg16",):
        model = build_model(name, dataset)
        assert isinstance(model, MODELS[name])
        assert model(torch.randn(shape)).shape == (2, classes)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("alexnet", dataset)


def test_init_reference():
    torch.manual_seed(0)
    model = init_reference(LeNet300())
    w, b = model.net[1].weight, model.net[1].bias
    bound = (6 / (784 + 300)) ** 0.5  # xavier_uniform_
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert abs(b.std().item() - 0.1) < 0.02
