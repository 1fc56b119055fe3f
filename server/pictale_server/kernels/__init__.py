"""GPU kernels for decoding and their launchers (docs/kernels.md): the NF4 GEMV in CUDA
(nf4_gemv.cu, compiled at load by NVRTC), and Triton kernels for the decode step's small
operations, its attention and its sampler. Nothing here knows models: the engine's fast path
(engine/fast_path/) calls these. Importing this package imports neither Triton nor CUDA.
"""
