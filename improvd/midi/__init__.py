"""MIDI at the edges: files (replay, training) and ports (live). Inside, everything is ticks."""
