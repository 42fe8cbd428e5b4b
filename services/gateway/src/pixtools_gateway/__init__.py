"""The PixTools HTTP gateway."""
