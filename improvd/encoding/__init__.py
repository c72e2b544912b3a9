"""Note events <-> model inputs, shared by training and the daemon so both agree exactly.

Every module here is numpy-only (music21 is imported lazily where a file must be parsed) so
the daemon can use it without torch.
"""

TICKS_PER_BEAT = 12  # the engine's grid: 12 ticks a beat covers 16ths, triplets and swing 8ths
BEATS_PER_BAR = 4
BAR_TICKS = TICKS_PER_BEAT * BEATS_PER_BAR


def fold_to_range(pitch: int, low: int, high: int) -> int:
    """Move a pitch by octaves up to ``low`` and down to ``high``, keeping its pitch class (the
    one choice a model made that the register must not undo). In a range narrower than an
    octave it may end below ``low``: a caller that needs a hard bound clamps after."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch
