"""Offline training (torch): corpora, model modules, the train loop, evaluation, ONNX export.

Nothing in ``improvd`` imports this package except the ``train``/``export``/``evaluate``
commands, lazily, so the daemon never loads torch.
"""
