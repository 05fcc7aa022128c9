"""What the services' models share: ResNet backbones, ImageNet input normalisation, the compute device
and checkpoint files with the model version every prediction records."""
