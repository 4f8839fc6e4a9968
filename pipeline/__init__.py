"""Batch stylization pipeline for images and video."""
