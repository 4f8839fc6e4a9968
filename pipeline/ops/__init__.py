"""Pure tensor kernels over ``[..., C, H, W]``: resize, colour conversion, warp and optical
flow, TV denoising, AdaIN, style controls, losses, noise, padding.  No state, no files, no
device choice: the caller's tensors in, new tensors out.

May import: the bottom modules only (``errors``, ``hashing``, ``typed_yaml``).
"""
