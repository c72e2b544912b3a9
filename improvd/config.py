"""One settings object: TOML file < environment (IMPROVD_*) < command-line flags.

Every flag of ``improvd run`` has a key here of the same name (dashes as underscores), so a
stage machine keeps its whole set-up in /etc/improvd/improvd.toml and SIGHUP re-reads it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from improvd import ImprovdError, file_info
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT

DEFAULT_CONFIG = Path("/etc/improvd/improvd.toml")
MODES = ("call-response", "duet", "harmonize")
BACKENDS = ("auto", "alsa", "jack")
PROVIDERS = ("cpu", "cuda", "auto")
RULES = ("range", "max_leap", "max_repeats", "min_length", "snap", "polyphony", "velocity", "humanize")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_DURATION_BARS = 64  # the longest wait, phrase or hold a setting may name: longer is a typo, not music
MAX_FILE_BYTES = 1 << 20  # a settings file or chord chart is text of a few KB; /dev/zero is not one


class ConfigError(ImprovdError):
    pass


@dataclass
class RuleSettings:
    order: list = field(default_factory=lambda: ["range", "max_leap", "max_repeats", "min_length", "snap", "polyphony", "velocity"])
    range_low: int = 36
    range_high: int = 96
    max_leap: int = 12
    max_repeats: int = 3
    min_length: int = 2  # ticks
    snap_to: str = "chord"  # chord | scale
    snap_strength: float = 0.0  # 0 = leave notes alone, 1 = always snap
    max_polyphony: int = 4
    velocity_follow: float = 0.8  # 0 = model's velocity, 1 = performer's recent mean
    humanize_ms: float = 0.0


@dataclass
class CCSettings:
    temperature: int = 1
    mode: int = 20
    reset: int = 21
    panic: int = 22
    sustain: int = 64
    mutate: int = 23  # a new answer to the same phrase
    loop: int = 24  # held: repeat the last answer
    tempo: int = 25  # 40 + 2 x value BPM
    model: int = 26  # value picks among the loaded models (program change does too)
    echo: int = 27  # value / 127: how much answers develop the call's motifs
    state: int = 0  # CC improvd SENDS with its state (0 idle, 64 listening, 127 answering); 0 = off


@dataclass
class Settings:
    in_port: str | None = None
    out_port: str | None = None
    backend: str = "auto"
    virtual: bool = False
    client_name: str = "improvd"
    model: str = "jazz"
    model_dir: str | None = None  # folders searched first for a model name (a path list, like IMPROVD_MODEL_DIR)
    provider: str = "cpu"  # onnxruntime execution provider: cpu | cuda | auto (cuda needs improvd[gpu])
    mode: str = "call-response"
    wait: str = "1bar"
    bars: int | None = None  # answer length; None = the performer's phrase length
    max_bars: int = 8
    tempo: float = 120.0  # fixed BPM; while following, where the tracker starts and what it falls back to
    tempo_follow: str = "auto"  # on | off | auto: follow the performer unless a tempo, clock_in or tap_key is set
    tempo_net: bool = True  # the tracker also hears onsets through its learned GRU (docs/tempo.md); false: without it
    clock_in: bool = False
    clock_out: bool = False
    swing: float = 0.0  # 0 straight .. 0.5 hard swing: delay of the off-beat 8th, in 8ths
    chords: str | None = None
    chords_file: str | None = None
    split: int | None = None  # performer notes below this pitch are read as chords
    temperature: float | None = None  # None = the model card's default
    top_p: float | None = None
    echo: float | None = None  # 0..1: how much answers develop the call's motifs; None = the model's default
    seed: int | None = None
    channel_in: int | None = None  # 1..16, None = all
    channel_out: int = 1
    voices: int = 4
    max_note_beats: float = 8.0
    reset_after_bars: int = 8
    max_hold: str = "8bars"  # a key held this long with nothing else played counts as released
    record: str | None = None  # a folder every take goes to (performer + improvd, tempo map, chords)
    stats: bool = False
    log_level: str = "info"
    rt_priority: int = 0  # SCHED_FIFO priority of the engine thread (0 = normal scheduling)
    passthrough: bool = True  # the performer's notes go on to the output too
    passthrough_channel: int | None = None  # None = the performer's own channel
    metronome: str = "off"  # off | count-in (count_in_bars at the start) | on
    metronome_channel: int = 10
    count_in_bars: int = 1  # bars of clicks at the start with metronome = "count-in"
    models: list = field(default_factory=list)  # more models to switch among live (warm state each)
    min_phrase: str = "0"  # a shorter phrase gets no answer
    max_listen: str | None = None  # answer anyway after listening this long
    tap_key: int | None = None  # three taps of this note set the tempo
    key: str = "auto"  # folk: the ABC key the performer's phrase is written in ("auto": detected per phrase)
    meter: str | None = None  # folk: the ABC meter, e.g. "6/8"; unset = the model card's
    cc: CCSettings = field(default_factory=CCSettings)
    rules: RuleSettings = field(default_factory=RuleSettings)

    # -- derived -------------------------------------------------------------------------
    @property
    def follows_performer(self) -> bool:
        """The grid runs on the performer's own time: asked for, or nothing else sets the time."""
        if self.tempo_follow == "auto":
            return not self.clock_in and self.tap_key is None
        return self.tempo_follow == "on"

    @property
    def wait_ticks(self) -> int:
        return parse_duration_ticks(self.wait, self.tempo, "wait")

    @property
    def min_phrase_ticks(self) -> int:
        return 0 if str(self.min_phrase).strip() in ("0", "") else parse_duration_ticks(self.min_phrase, self.tempo, "min_phrase")

    @property
    def max_listen_ticks(self) -> int | None:
        return None if not self.max_listen else parse_duration_ticks(self.max_listen, self.tempo, "max_listen")

    @property
    def max_hold_ticks(self) -> int:
        return parse_duration_ticks(self.max_hold, self.tempo, "max_hold")

    @property
    def max_note_ticks(self) -> int:
        return max(1, int(round(self.max_note_beats * TICKS_PER_BEAT)))


def parse_duration_ticks(text: str, tempo: float, what: str) -> int:
    """``1bar``, ``2beats``, ``1.5`` (beats), ``500ms`` or ``0.5s`` to grid ticks, at most
    MAX_DURATION_BARS: a wait of 100000bars would leave the daemon listening for days."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(bars?|beats?|ms|s)?\s*", str(text))
    if not m:
        raise ConfigError(f"{what} {text!r} is not a duration: write e.g. 1bar, 2beats, 500ms")
    value, unit = float(m.group(1)), (m.group(2) or "beats")
    if unit.startswith("bar"):
        ticks = value * BAR_TICKS
    elif unit.startswith("beat"):
        ticks = value * TICKS_PER_BEAT
    else:
        seconds = value / 1000 if unit == "ms" else value
        ticks = seconds * tempo / 60 * TICKS_PER_BEAT
    if not ticks <= MAX_DURATION_BARS * BAR_TICKS:
        raise ConfigError(f"{what} {text!r} is longer than {MAX_DURATION_BARS} bars (at {tempo:g} BPM): "
                          f"use at most {MAX_DURATION_BARS}bars")
    return max(1, int(round(ticks)))


def _coerce(name: str, value, kind):
    """A value from TOML, the environment or a flag, as its field's type, or a ConfigError:
    never a table where a word goes, a bool where a number goes, nor a NaN or infinity."""
    origin = str(kind)
    try:
        if value is None:
            return None
        if isinstance(value, dict):
            raise TypeError  # a table where a value goes
        if isinstance(value, bool) and "bool" not in origin:
            raise TypeError  # true is not 1, nor "True"
        if "bool" in origin and not isinstance(value, bool):
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if "bool" in origin:
            return value
        if origin.startswith("int") or origin == "int | None":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if origin.startswith("float"):
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"config key {name} = {value!r} is not a finite number: write a number such as 1.5")
            return number
        if origin.startswith("list"):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return list(value)
        if isinstance(value, list):
            raise TypeError
        return str(value) if not isinstance(value, str) else value
    except (TypeError, ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ConfigError(f"config key {name} = {shown} has the wrong type: it must be {origin}") from None


def _apply(obj, values: dict, prefix: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in fields:
            raise ConfigError(f"config key {prefix}{key} is unknown: valid keys are {', '.join(sorted(fields))}")
        cur = getattr(obj, key)
        if key == "tempo" and not prefix and isinstance(obj, Settings):
            # tempo = "follow" asks for the performer's time; a number fixes the tempo (and wins)
            if isinstance(value, str) and value.strip().lower() == "follow":
                obj.tempo_follow = "on"
                continue
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ConfigError(f"config key tempo = {value[:40]!r} is not a tempo: write BPM (20..400) or follow") from None
            obj.tempo_follow = "off"
        if dataclasses.is_dataclass(cur):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix}{key} must be a table [{key}]")
            _apply(cur, value, prefix=f"{key}.")
        else:
            setattr(obj, key, _coerce(prefix + key, value, fields[key].type))


def validate(s: Settings) -> Settings:
    if s.mode not in MODES:
        raise ConfigError(f"mode {s.mode!r} is unknown: use one of {', '.join(MODES)}")
    if s.provider not in PROVIDERS:
        raise ConfigError(f"provider {s.provider!r} is unknown: use one of {', '.join(PROVIDERS)}")
    if s.backend not in BACKENDS:
        raise ConfigError(f"backend {s.backend!r} is unknown: use one of {', '.join(BACKENDS)}")
    if not 20 <= s.tempo <= 400:
        raise ConfigError(f"tempo {s.tempo} is out of range: use 20..400 BPM, or follow")
    if s.tempo_follow not in ("auto", "on", "off"):
        raise ConfigError(f"tempo_follow {s.tempo_follow!r} is unknown: use auto, on or off")
    if not 0 <= s.swing <= 0.75:
        raise ConfigError(f"swing {s.swing} is out of range: use 0 (straight) .. 0.75")
    if s.bars is not None and not 1 <= s.bars <= 64:
        raise ConfigError(f"bars {s.bars} is out of range: use 1..64")
    if s.temperature is not None and not 0 <= s.temperature <= 5:
        raise ConfigError(f"temperature {s.temperature} is out of range: use 0 (greedy) .. 5")
    if s.echo is not None and not 0 <= s.echo <= 1:
        raise ConfigError(f"echo {s.echo} is out of range: use 0 (the model alone) .. 1 (develop the call all the time)")
    if s.top_p is not None and not 0 < s.top_p <= 1:
        raise ConfigError(f"top_p {s.top_p} is out of range: use 0 < top_p <= 1")
    if s.channel_in is not None and not 1 <= s.channel_in <= 16:
        raise ConfigError(f"channel_in {s.channel_in} is out of range: use 1..16")
    if not 1 <= s.channel_out <= 16:
        raise ConfigError(f"channel_out {s.channel_out} is out of range: use 1..16")
    if s.split is not None and not 0 <= s.split <= 127:
        raise ConfigError(f"split {s.split} is out of range: use a MIDI note 0..127")
    if not 0 <= s.rt_priority <= 99:
        raise ConfigError(f"rt_priority {s.rt_priority} is out of range: use 0 (off) .. 99 (at most the unit's LimitRTPRIO)")
    if not 1 <= s.voices <= 8:
        raise ConfigError(f"voices {s.voices} is out of range: use 1..8")
    if not 1 <= s.max_bars <= 64:
        raise ConfigError(f"max_bars {s.max_bars} is out of range: use 1..64")
    if not 0 < s.max_note_beats <= 64:
        raise ConfigError(f"max_note_beats {s.max_note_beats} is out of range: use more than 0, at most 64 (beats)")
    if not 0 <= s.reset_after_bars <= 64:
        raise ConfigError(f"reset_after_bars {s.reset_after_bars} is out of range: use 0..64")
    if s.seed is not None and not 0 <= s.seed < 2**63:
        raise ConfigError(f"seed {s.seed} is out of range: use 0 .. 2**63-1")
    if s.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level {s.log_level!r} is unknown: use one of {', '.join(LOG_LEVELS)}")
    if not s.client_name or len(s.client_name) > 48 or ":" in s.client_name or not s.client_name.isprintable():
        raise ConfigError(f"client_name {s.client_name[:60]!r} is not a MIDI client name: use 1..48 printable characters without ':'")
    for what, name in [("model", s.model), *(("models", m) for m in s.models)]:
        if not name or len(name) > 1024 or "\0" in name:
            raise ConfigError(f"{what} {name[:60]!r} is not a model: use a bundled name such as jazz or a path to NAME.json")
    for what, pattern in (("in_port", s.in_port), ("out_port", s.out_port)):
        if pattern is not None and (len(pattern) > 256 or not pattern.isprintable()):
            raise ConfigError(f"{what} {pattern[:60]!r} is not a port name: use part of a name `improvd ports` lists")
    r = s.rules
    unknown = [x for x in r.order if x not in RULES]
    if unknown:
        raise ConfigError(f"rules.order names unknown rules {unknown}: use any of {', '.join(RULES)}")
    if not 0 <= r.range_low < r.range_high <= 127:
        raise ConfigError(f"rules.range_low/range_high {r.range_low}..{r.range_high} is not a pitch range: use 0 <= low < high <= 127")
    if r.snap_to not in ("chord", "scale"):
        raise ConfigError(f"rules.snap_to {r.snap_to!r} is unknown: use chord or scale")
    if not 0 <= r.snap_strength <= 1 or not 0 <= r.velocity_follow <= 1:
        raise ConfigError("rules.snap_strength and rules.velocity_follow must lie in 0..1")
    for name, low, high, unit in (("max_leap", 1, 127, "semitones"), ("max_repeats", 1, 64, "notes"),
                                  ("min_length", 0, BAR_TICKS, "ticks, 12 a beat"), ("max_polyphony", 1, 16, "notes"),
                                  ("humanize_ms", 0, 100, "ms")):
        if not low <= getattr(r, name) <= high:
            raise ConfigError(f"rules.{name} = {getattr(r, name)} is out of range: use {low}..{high} ({unit})")
    for name in ("temperature", "mode", "reset", "panic", "sustain", "mutate", "loop", "tempo", "model", "echo", "state"):
        v = getattr(s.cc, name)
        if not 0 <= v <= 127:
            raise ConfigError(f"cc.{name} = {v} is not a controller number: use 0..127")
    if s.passthrough_channel is not None and not 1 <= s.passthrough_channel <= 16:
        raise ConfigError(f"passthrough_channel {s.passthrough_channel} is out of range: use 1..16")
    if s.metronome not in ("off", "count-in", "on"):
        raise ConfigError(f"metronome {s.metronome!r} is unknown: use off, count-in or on")
    if not 1 <= s.metronome_channel <= 16:
        raise ConfigError(f"metronome_channel {s.metronome_channel} is out of range: use 1..16 (10 is drums)")
    if not 0 <= s.count_in_bars <= 8:
        raise ConfigError(f"count_in_bars {s.count_in_bars} is out of range: use 0..8")
    if s.tap_key is not None and not 0 <= s.tap_key <= 127:
        raise ConfigError(f"tap_key {s.tap_key} is not a MIDI note: use 0..127")
    if s.key != "auto" or s.meter:
        from improvd.encoding import abc

        try:
            if s.key != "auto":
                abc.parse_key(s.key)
        except Exception:
            raise ConfigError(f"key {s.key!r} is not an ABC key: write e.g. G, Dmin, A Dorian, or auto") from None
        if s.meter and abc.parse_meter(s.meter) is None:
            raise ConfigError(f"meter {s.meter!r} is not a meter: write e.g. 4/4, 6/8, 3/4")
    load_chart(s)  # a bad chord symbol or chords_file refuses the settings, at start and on a reload
    s.wait_ticks  # raises on a bad duration
    s.min_phrase_ticks
    s.max_listen_ticks
    s.max_hold_ticks
    return s


def read_text_file(path: Path, what: str) -> str:
    """A small text file, read whole, or a ConfigError naming it: a FIFO, /dev/zero or a 7 GB
    file would block the start or a SIGHUP reload, or eat the memory of the stage machine."""
    info = file_info(path, what, ConfigError, missing="pass an existing file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file: pass a text file")
    if info.st_size > MAX_FILE_BYTES:
        raise ConfigError(f"{what} {path} is {info.st_size} bytes, more than the {MAX_FILE_BYTES} a {what} may be: pass the text file meant")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read ({e.strerror}): check the path and its permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{what} {path} grew past {MAX_FILE_BYTES} bytes while read: pass the text file meant")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {e.start}): pass the text file meant") from None
    if "\0" in text:
        raise ConfigError(f"{what} {path} holds NUL bytes, so it is no text file: pass the text file meant")
    return text


def load_chart(s: Settings):
    """The chord chart the settings name (``chords_file`` before ``chords``) or None; every
    chord parsed, so a typo refuses the settings instead of stopping a song."""
    from improvd.chords import Progression

    if s.chords_file:
        text, where = read_text_file(Path(s.chords_file), "chords_file"), f"chords_file {s.chords_file}: "
    elif s.chords:
        text, where = s.chords, ""
    else:
        return None
    try:
        return Progression.parse(text, BAR_TICKS)
    except ConfigError:
        raise
    except ImprovdError as e:
        raise ConfigError(f"{where}{e}") from None


def env_values(environ=None) -> dict:
    environ = os.environ if environ is None else environ
    names = {f.name for f in dataclasses.fields(Settings)}
    out = {}
    for k, v in environ.items():
        if k.startswith("IMPROVD_") and k[8:].lower() in names and k[8:].lower() not in ("cc", "rules"):
            out[k[8:].lower()] = v
    return out


def load_settings(config: str | Path | None = None, flags: dict | None = None, environ=None) -> Settings:
    """File < environment < flags. ``flags`` holds only the flags the user actually gave."""
    s = Settings()
    path = Path(config) if config else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is not None:
        text = read_text_file(path, "config file")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML ({e}): fix that line") from None
        except RecursionError:
            raise ConfigError(f"config file {path} nests tables or arrays too deep to be settings: fix it") from None
        _apply(s, data)
    _apply(s, env_values(environ))
    _apply(s, {k: v for k, v in (flags or {}).items() if v is not None})
    return validate(s)


def used_channels(settings: Settings) -> list[int]:
    """0-based channels improvd may leave sounding at the synth: its own, the clicks', and where
    passthrough puts the performer's notes (any channel, unless one is set)."""
    channels = {settings.channel_out - 1}
    if settings.metronome != "off":
        channels.add(settings.metronome_channel - 1)
    if settings.passthrough:
        if settings.passthrough_channel:
            channels.add(settings.passthrough_channel - 1)
        elif settings.channel_in:
            channels.add(settings.channel_in - 1)
        else:
            channels.update(range(16))
    return sorted(channels)
