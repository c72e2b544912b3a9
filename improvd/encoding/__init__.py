"""Note events <-> model inputs, shared by training and the daemon so both agree exactly.

Every module here is numpy-only (music21 is imported lazily where a file must be parsed) so
the daemon can use it without torch.
"""

TICKS_PER_BEAT = 12  # the engine's grid: 12 ticks a beat covers 16ths, triplets and swing 8ths
BEATS_PER_BAR = 4
BAR_TICKS = TICKS_PER_BEAT * BEATS_PER_BAR
