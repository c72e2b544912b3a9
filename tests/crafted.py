"""Malformed and crafted standard MIDI files, written byte by byte: what a broken recorder, a
bad converter or someone probing the daemon hands it. Each is a few bytes to a few hundred KB,
so the whole set is cheap to build in a test."""

from __future__ import annotations

import random
import struct


def chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack(">I", len(body)) + body


def header(fmt: int = 1, tracks: int = 1, division: int = 480) -> bytes:
    return chunk(b"MThd", struct.pack(">HHH", fmt, tracks, division))


def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity (delta times, meta lengths): 7 bits a byte."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def event(delta: int, data: bytes) -> bytes:
    return vlq(delta) + data


def note(delta: int = 0, pitch: int = 60, length: int = 240, velocity: int = 90) -> bytes:
    return event(delta, bytes([0x90, pitch, velocity])) + event(length, bytes([0x80, pitch, 0]))


def tempo(delta: int, microseconds: int) -> bytes:
    return event(delta, b"\xff\x51\x03" + microseconds.to_bytes(3, "big"))


def track(*events: bytes, end_delta: int = 0, end: bool = True) -> bytes:
    return chunk(b"MTrk", b"".join(events) + (event(end_delta, b"\xff\x2f\x00") if end else b""))


def midi(*tracks: bytes, fmt: int = 1, division: int = 480) -> bytes:
    return header(fmt, len(tracks), division) + b"".join(tracks)


def phrase() -> bytes:
    return note(0, 60) + note(0, 64) + note(0, 67)


FAR = 0x0FFFFFFF  # the largest delta time a file can hold: 559,240 beats at 480 per beat

CRAFTED = {
    "tempo_zero": lambda: midi(track(tempo(0, 0), phrase())),
    "tempo_zero_midway": lambda: midi(track(note(0), tempo(0, 0), note(0, 62))),
    "tempo_too_fast": lambda: midi(track(tempo(0, 1), phrase())),
    "tempo_too_slow": lambda: midi(track(tempo(0, 0xFFFFFF), phrase())),
    "key_signature_bogus_sharps": lambda: midi(track(event(0, b"\xff\x59\x02\x7f\x00"), phrase())),
    "key_signature_bogus_mode": lambda: midi(track(event(0, b"\xff\x59\x02\x00\x05"), phrase())),
    "key_signature_short": lambda: midi(track(event(0, b"\xff\x59\x01\x00"), phrase())),
    "time_signature_zero": lambda: midi(track(event(0, b"\xff\x58\x04\x00\x00\x00\x00"), phrase())),
    "smpte_division": lambda: midi(track(phrase()), division=0xE728),
    "division_zero": lambda: midi(track(phrase()), division=0),
    "type_2": lambda: midi(track(phrase()), fmt=2),
    "no_tracks": lambda: header(1, 0),
    "header_promises_more_tracks": lambda: header(1, 5) + track(phrase()),
    "truncated_track": lambda: midi(track(phrase()))[:-7],
    "track_length_lies": lambda: header(1, 1) + b"MTrk" + struct.pack(">I", 0x7FFFFFFF) + phrase(),
    "header_length_huge": lambda: b"MThd" + struct.pack(">I", 0xFFFFFFF0) + struct.pack(">HHH", 1, 1, 480),
    "riff_not_midi": lambda: b"RIFF" + bytes(40),
    "empty": lambda: b"",
    "running_status_first": lambda: midi(track(event(0, bytes([60, 90])), phrase())),
    "sysex_unterminated": lambda: midi(track(event(0, b"\xf0\x05\x01\x02"), phrase())),
    "meta_length_huge": lambda: midi(track(event(0, b"\xff\x01\x8f\xff\xff\x7f" + b"x" * 10), phrase())),
    "delta_overlong": lambda: midi(track(b"\xff\xff\xff\xff\xff\x90\x3c\x40", phrase())),
    "pitch_and_velocity_over_127": lambda: midi(track(event(0, b"\x90\xff\xff"), event(10, b"\x80\xff\x00"), phrase())),
    "drums_only": lambda: midi(track(event(0, b"\x99\x24\x40"), event(10, b"\x89\x24\x00"))),
    "huge_delta": lambda: midi(track(note(0), note(FAR, 62))),
    "huge_deltas_many": lambda: midi(track(*[note(FAR, 60 + i % 12) for i in range(200)])),
    "far_end_of_track": lambda: midi(track(phrase(), end_delta=FAR)),
    "far_note_off": lambda: midi(track(note(0, length=FAR))),
    "note_never_released_far_end": lambda: midi(track(event(0, b"\x90\x3c\x40"), end_delta=FAR)),
    "all_keys_held_for_ever": lambda: midi(track(*[event(0, bytes([0x90, p, 90])) for p in range(128)],
                                                 event(FAR, b"\x80\x00\x00"))),
    "slow_tempo_far_note": lambda: midi(track(tempo(0, 0xFFFFFF), note(0), note(FAR, 62))),
    "many_tracks": lambda: midi(*[track(note(0, 40 + i % 40)) for i in range(300)]),
    "over_the_replay_note_limit": lambda: midi(track(*[note(1, 36 + i % 60, 1) for i in range(51_000)])),
    "over_the_size_limit": lambda: midi(track(phrase())) + chunk(b"XFIL", bytes(3 << 20)),
}


def corrupted(original: bytes, count: int, seed: int = 0) -> dict[str, bytes]:
    """Byte-level damage to a good file: a few bytes overwritten, sometimes cut short."""
    rng = random.Random(seed)
    out = {}
    for i in range(count):
        raw = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        if rng.random() < 0.3:
            raw = raw[: rng.randrange(len(raw))]
        out[f"corrupted_{i}"] = bytes(raw)
    return out


# -- model artifacts: a card (NAME.json) and its graph (NAME.onnx) damaged one way at a time --------
def _without(card: dict, key: str) -> dict:
    return {k: v for k, v in card.items() if k != key}


def _with(card: dict, **changes) -> dict:
    return {**card, **changes}


def card_corruptions(card: dict) -> dict:
    """name -> a changed card (a dict), or raw bytes where the damage is below JSON."""
    first_in = card["inputs"][0]
    out = {
        "not_json": b"{ this is not json",
        "not_utf8": b"\xff\xfe{}",
        "json_list": b"[1, 2, 3]",
        "json_null": b"null",
        "empty_file": b"",
        "deeply_nested": b"[" * 100_000 + b"]" * 100_000,
        "sha256_empty": _with(card, sha256=""),
        "sha256_missing": _without(card, "sha256"),
        "sha256_not_hex": _with(card, sha256="z" * 64),
        "sha256_short": _with(card, sha256=card["sha256"][:12]),
        "sha256_number": _with(card, sha256=7),
        "sha256_of_another_file": _with(card, sha256="0" * 64),
        "onnx_file_traversal": _with(card, onnx_file="../../../etc/passwd"),
        "onnx_file_absolute": _with(card, onnx_file="/etc/passwd"),
        "onnx_file_dotdot": _with(card, onnx_file=".."),
        "onnx_file_number": _with(card, onnx_file=12),
        "onnx_file_nul": _with(card, onnx_file="a\0b.onnx"),
        "onnx_file_missing": _with(card, onnx_file="gone.onnx"),
        "files_traversal": _with(card, files={"../../secret.npz": "0" * 64}),
        "files_not_a_table": _with(card, files=["x.npz"]),
        "files_sha_empty": _with(card, files={k: "" for k in card.get("files") or {"x.npz": 1}}),
        "card_version_2": _with(card, card_version=2),
        "card_version_text": _with(card, card_version="1"),
        "family_unknown": _with(card, family="polka"),
        "family_number": _with(card, family=3),
        "name_list": _with(card, name=["x"]),
        "encoding_list": _with(card, encoding=[1]),
        "encoding_other": _with(card, encoding={**card["encoding"], "version": 99}),
        "encoding_missing": _without(card, "encoding"),
        "grid_string": _with(card, grid="12"),
        "grid_frame_ticks_zero": _with(card, grid={**card["grid"], "frame_ticks": 0}),
        "grid_frame_ticks_text": _with(card, grid={**card["grid"], "frame_ticks": "x"}),
        "inputs_missing": _without(card, "inputs"),
        "inputs_not_list": _with(card, inputs={"a": 1}),
        "inputs_item_not_table": _with(card, inputs=[1, 2]),
        "inputs_item_extra_field": _with(card, inputs=[{**first_in, "extra": 1}] + card["inputs"][1:]),
        "input_shape_text": _with(card, inputs=[{**first_in, "shape": "1x2"}] + card["inputs"][1:]),
        "input_shape_negative": _with(card, inputs=[{**first_in, "shape": [-1] * len(first_in["shape"])}] + card["inputs"][1:]),
        "input_shape_wrong": _with(card, inputs=[{**first_in, "shape": [7] * len(first_in["shape"])}] + card["inputs"][1:]),
        "input_shape_rank": _with(card, inputs=[{**first_in, "shape": [1, 1, 1, 1, 1]}] + card["inputs"][1:]),
        "input_dtype_odd": _with(card, inputs=[{**first_in, "dtype": "complex128"}] + card["inputs"][1:]),
        "input_renamed": _with(card, inputs=[{**first_in, "name": "nope"}] + card["inputs"][1:]),
        "input_dropped": _with(card, inputs=card["inputs"][1:]),
        "outputs_empty": _with(card, outputs=[]),
        "state_list": _with(card, state=["h"]),
        "state_unknown_names": _with(card, state={"q": "r"}),
        "sampling_text": _with(card, sampling="hot"),
        "sampling_nan": _with(card, sampling={**(card.get("sampling") or {}), "temperature": float("nan")}),
        "sampling_negative": _with(card, sampling={**(card.get("sampling") or {}), "temperature": -1, "top_p": 7}),
        "unknown_field": _with(card, colour="red"),
    }
    enc = card["encoding"]
    for key, value in enc.items():
        if isinstance(value, list):
            out[f"encoding_{key}_empty"] = _with(card, encoding={**enc, key: []})
            out[f"encoding_{key}_wrong_items"] = _with(card, encoding={**enc, key: [None] * len(value)})
        elif isinstance(value, dict):
            out[f"encoding_{key}_text"] = _with(card, encoding={**enc, key: "x"})
    return out


def graph_corruptions(graph: bytes, other_graph: bytes, seed: int = 0) -> dict:
    """name -> graph bytes; the card beside each is given the graph's own sha256, as an export
    that went wrong (or a hand that edited both) would leave it."""
    rng = random.Random(seed)
    flipped = bytearray(graph)
    for _ in range(64):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    return {
        "graph_empty": b"",
        "graph_truncated": graph[: len(graph) // 3],
        "graph_random_bytes": bytes(rng.randrange(256) for _ in range(4096)),
        "graph_bytes_flipped": bytes(flipped),
        "graph_of_another_model": other_graph,
        "graph_text": b"this is not an onnx graph\n" * 10,
    }


def parameter_corruptions(npz: bytes) -> dict:
    """name -> bytes of the RNN-RBM's parameter file (W, bv0, bh0, u0), damaged; as with the
    graph, the card is given the file's own sha256."""
    import io

    import numpy as np

    def saved(**arrays) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    with np.load(io.BytesIO(npz)) as z:
        good = {k: z[k] for k in z.files}
    nan_w = good["W"].copy()
    nan_w[0, 0] = np.nan
    return {
        "npz_empty": b"",
        "npz_truncated": npz[: len(npz) // 2],
        "npz_random_bytes": bytes(random.Random(1).randrange(256) for _ in range(2048)),
        "npz_lacks_W": saved(**{k: v for k, v in good.items() if k != "W"}),
        "npz_W_flat": saved(**{**good, "W": good["W"].ravel()}),
        "npz_W_scalar": saved(**{**good, "W": np.float64(1.0)}),
        "npz_bias_wrong_length": saved(**{**good, "bv0": good["bv0"][:10]}),
        "npz_W_nan": saved(**{**good, "W": nan_w}),
    }
