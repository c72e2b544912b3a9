"""The runtime's one door to the offline trainer.

improvd.training imports improvd, never the reverse: the family table (which function trains,
exports, evaluates and generates for each family) is improvd.training.families'. The improvd
CLI's train, export, evaluate and generate commands (and bench's torch baseline) reach it through
``offline`` alone, by the dotted name below, resolved when a command runs: the daemon never gets
here, so it never loads torch or music21.
"""

FAMILIES = "improvd.training.families"


def offline(job: str):
    """improvd.training.families' ``job``: train, export, evaluate, generate or baseline. The
    family modules behind it load on the call; a missing train extra is one line naming the
    install (an ImprovdError)."""
    import importlib

    return getattr(importlib.import_module(FAMILIES), job)


# Evaluations of the daemon's own listening rather than of a model (`improvd evaluate timing`):
# name -> "module:function" with evaluate's signature (name, data, split, n, seed); no torch.
RUNTIME_EVALUATIONS = {"timing": "improvd.evaluation.timing:evaluate"}


def runtime_evaluation(name: str):
    import importlib

    module, function = RUNTIME_EVALUATIONS[name].split(":")
    return getattr(importlib.import_module(module), function)
