"""The RNN-RBM of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012), as the Theano tutorial
builds it, in torch.

  model.py     the net: recurrence, conditional RBMs, CD-k, the ONNX step, the .npz arrays
  data.py      piano rolls: train/valid pieces, chunks, batches
  train.py     presets, RBM pre-training, the CD-k training run
  metrics.py   AIS log-likelihood, frame accuracy (one draw, mean-field, Gibbs marginals)
  runs.py      run folders and exported models: load, export
  evaluate.py  `improvd evaluate rnnrbm`: the scores beside the paper's Table 1; the AIS check
  generate.py  `improvd generate` for rnnrbm models
  cli.py       `python -m improvd.training.rnnrbm train | evaluate | rolls`

The sweeps that chose the default preset are written up in docs/rnnrbm_sweeps.md; the GPU job
that ran them is scripts/gpu_rnnrbm_sweep.py, outside the package.
"""
