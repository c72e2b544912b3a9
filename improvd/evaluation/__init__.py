"""Offline evaluation and generation with the runtime models (onnxruntime, no torch)."""
