"""Narrow ResNets with torchvision's layout, for models small enough to train and ship on a CPU.

Both the LN detector and ESCNN accept them as backbones; the demo checkpoints use them.
"""

from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1


def compact_resnet(
    width: int = 16, blocks: tuple[int, int, int, int] = (1, 1, 1, 1)
) -> torchvision.models.ResNet:
    """A narrow ResNet with torchvision's layout (stem, four stages of `BasicBlock`, fc): stage
    widths width, 2x, 4x, 8x and `blocks` blocks per stage. (16, (1, 1, 1, 1)) costs about 1/40 of a
    ResNet-18; it exists so that training can be exercised on a CPU, not for diagnostic use."""
    resnet = torchvision.models.ResNet(BasicBlock, list(blocks))
    resnet.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    resnet.bn1 = nn.BatchNorm2d(width)
    stages = []
    inplanes = width
    for index, count in enumerate(blocks):
        planes, stride = width * 2**index, 1 if index == 0 else 2
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(inplanes, planes, stride, downsample)]
        layers += [BasicBlock(planes, planes) for _ in range(count - 1)]
        stages.append(nn.Sequential(*layers))
        inplanes = planes
    resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4 = stages
    resnet.fc = nn.Linear(inplanes, 1000)
    for module in resnet.modules():  # torchvision's initialisation, for the replaced layers
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return resnet
