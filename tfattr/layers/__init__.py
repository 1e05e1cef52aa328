"""Shared Keras building blocks."""
