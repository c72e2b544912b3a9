"""The bundled models (NAME.onnx + NAME.json model card), installed as ``improvd.bundled`` so
that a plain ``pip install .`` carries them; improvd.models finds them through this package."""
