"""Images: built-in image sets, image tables and backbones (torchvision imported lazily)."""
