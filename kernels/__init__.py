"""Fused LIF and membrane-MSE kernels (Triton, CuPy, compiled torch), each beside a plain-torch
reference. This folder is installed as ``mdsnn_zoo.kernels``; it is never a top-level ``kernels``.
"""
