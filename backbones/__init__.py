"""CNN building blocks the services' models share: ResNet backbones and ImageNet input normalisation."""
