"""Adapters: DnCNN run with PyTorch."""
