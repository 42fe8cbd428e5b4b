"""Adapters: YOLOX run with PyTorch."""
