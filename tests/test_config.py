"""Settings: TOML file < IMPROVD_* environment < command-line flags, and one-line errors."""

import pytest

from improvd.config import ConfigError, Settings, load_settings, parse_duration_ticks
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT


@pytest.fixture
def toml(tmp_path):
    def write(text):
        p = tmp_path / "improvd.toml"
        p.write_text(text)
        return p
    return write


def test_defaults_without_any_file(tmp_path):
    s = load_settings(None, {}, environ={})
    assert s.mode == "call-response" and s.tempo == 120.0 and s.wait_ticks == BAR_TICKS
    assert s.rules.order[0] == "range"


def test_file_env_flags_precedence(toml):
    path = toml('tempo = 90\nwait = "2beats"\nmode = "duet"\nseed = 7\n[rules]\nrange_low = 48\n')
    s = load_settings(path, {}, environ={})
    assert (s.tempo, s.wait, s.mode, s.seed, s.rules.range_low) == (90.0, "2beats", "duet", 7, 48)
    env = {"IMPROVD_TEMPO": "100", "IMPROVD_MODE": "harmonize", "IMPROVD_VIRTUAL": "yes", "HOME": "/x"}
    s = load_settings(path, {}, environ=env)
    assert (s.tempo, s.mode, s.wait, s.virtual) == (100.0, "harmonize", "2beats", True)  # env beats the file
    s = load_settings(path, {"tempo": 132.0, "seed": None}, environ=env)
    assert (s.tempo, s.mode, s.seed) == (132.0, "harmonize", 7)  # a flag beats both; an unset flag is no flag
    assert s.rules.range_low == 48


def test_env_cannot_overwrite_tables_and_ignores_other_variables(toml):
    s = load_settings(None, {}, environ={"IMPROVD_RULES": "x", "IMPROVD_NOPE": "1", "TEMPO": "99"})
    assert s.tempo == 120.0 and s.rules.range_low == 36


def test_durations():
    assert parse_duration_ticks("1bar", 120, "wait") == BAR_TICKS
    assert parse_duration_ticks("2 bars", 120, "wait") == 2 * BAR_TICKS
    assert parse_duration_ticks("2beats", 120, "wait") == 2 * TICKS_PER_BEAT
    assert parse_duration_ticks("1.5", 120, "wait") == 18
    assert parse_duration_ticks("500ms", 120, "wait") == TICKS_PER_BEAT  # a beat at 120
    assert parse_duration_ticks("0.5s", 60, "wait") == TICKS_PER_BEAT // 2
    assert parse_duration_ticks("1ms", 120, "wait") == 1  # never zero: the answer waits at least a tick


@pytest.mark.parametrize("text, key", [
    ("tempo = 90\nbogus = 1\n", "bogus"),
    ("[rules]\nrange_lo = 40\n", "rules.range_lo"),
    ("[cc]\nsustian = 64\n", "cc.sustian"),
    ('tempo = "fast"\n', "tempo"),
    ("seed = 1.5\n", "seed"),
    ('virtual = "maybe"\n', "virtual"),
    ("rules = 3\n", "rules"),
    ("tempo = 1000\n", "tempo"),
    ("swing = 0.9\n", "swing"),
    ('mode = "solo"\n', "mode"),
    ('backend = "coreaudio"\n', "backend"),
    ("channel_out = 17\n", "channel_out"),
    ("bars = 0\n", "bars"),
    ("temperature = -1\n", "temperature"),
    ("top_p = 0\n", "top_p"),
    ("split = 200\n", "split"),
    ("voices = 9\n", "voices"),
    ('wait = "soon"\n', "wait"),
    ('[rules]\norder = ["range", "sparkle"]\n', "rules.order"),
    ("[rules]\nrange_low = 90\nrange_high = 40\n", "range_low"),
    ('[rules]\nsnap_to = "key"\n', "rules.snap_to"),
    ("[rules]\nsnap_strength = 2\n", "snap_strength"),
    ("[cc]\npanic = 300\n", "cc.panic"),
])
def test_bad_config_names_the_key_in_one_line(toml, text, key):
    with pytest.raises(ConfigError) as e:
        load_settings(toml(text), {}, environ={})
    msg = str(e.value)
    assert key in msg and "\n" not in msg


def test_bad_env_and_flag_values_name_the_key():
    with pytest.raises(ConfigError, match="tempo"):
        load_settings(None, {}, environ={"IMPROVD_TEMPO": "quick"})
    with pytest.raises(ConfigError, match="channel_in"):
        load_settings(None, {"channel_in": 0}, environ={})
    with pytest.raises(ConfigError, match="wait"):
        load_settings(None, {"wait": "a while"}, environ={})


def test_missing_and_broken_files(tmp_path, toml):
    with pytest.raises(ConfigError, match="does not exist") as e:
        load_settings(tmp_path / "nope.toml", {}, environ={})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not valid TOML") as e:
        load_settings(toml("tempo = = 3\n"), {}, environ={})
    assert "\n" not in str(e.value)


def test_lists_from_env_and_toml(toml):
    s = load_settings(toml('[rules]\norder = ["range", "snap"]\n'), {}, environ={})
    assert s.rules.order == ["range", "snap"]
    s = load_settings(None, {}, environ={"IMPROVD_CHORDS": "Dm7 G7 | Cmaj7"})
    assert s.chords == "Dm7 G7 | Cmaj7"



# -- issue 11, item 8: what validation accepts must play ------------------------------------------
@pytest.mark.parametrize("text, key", [
    ("max_note_beats = -1\n", "max_note_beats"),
    ("max_note_beats = 0\n", "max_note_beats"),
    ("max_note_beats = nan\n", "max_note_beats"),
    ("max_note_beats = inf\n", "max_note_beats"),
    ("max_note_beats = 65\n", "max_note_beats"),
    ("tempo = nan\n", "tempo"),
    ("swing = -inf\n", "swing"),
    ("temperature = nan\n", "temperature"),
    ("[rules]\nsnap_strength = nan\n", "rules.snap_strength"),
    ('wait = "100000bars"\n', "wait"),
    ('min_phrase = "65bars"\n', "min_phrase"),
    ('max_listen = "1000s"\n', "max_listen"),
    ('wait = "99999999999999999999999999999999999"\n', "wait"),
    ("max_bars = 0\n", "max_bars"),
    ("max_bars = 1000\n", "max_bars"),
    ("seed = -1\n", "seed"),
    ("reset_after_bars = -1\n", "reset_after_bars"),
    ('log_level = "loud"\n', "log_level"),
    ('client_name = ""\n', "client_name"),
    ('client_name = "a:b"\n', "client_name"),
    ("models = [1, 2]\n", "models"),
    ('models = "jazz"\nmodel = ""\n', "model"),
    ("tempo = true\n", "tempo"),
    ("mode = { a = 1 }\n", "mode"),
    ('in_port = ["x"]\n', "in_port"),
    ("[rules]\nmax_leap = 0\n", "rules.max_leap"),
    ("[rules]\nmax_polyphony = 0\n", "rules.max_polyphony"),
    ("[rules]\nhumanize_ms = 1e9\n", "rules.humanize_ms"),
    ("[rules]\norder = [1]\n", "rules.order"),
    ("[rules.extra]\nx = 1\n", "rules.extra"),
    ("[cc]\npanic = 1.5\n", "cc.panic"),
    ('chords = "Dm7 G7 | foo"\n', "foo"),
    ('chords = "Dm7 | CmMaj7 | Cxyz"\n', "Cxyz"),
])
def test_values_that_would_break_playing_are_refused_in_one_line(toml, text, key):
    with pytest.raises(ConfigError) as e:
        load_settings(toml(text), {}, environ={})
    assert key in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name, value", [
    ("IMPROVD_TEMPO", "nan"), ("IMPROVD_MAX_NOTE_BEATS", "inf"), ("IMPROVD_MAX_NOTE_BEATS", "-1"),
    ("IMPROVD_SEED", "-1"), ("IMPROVD_SEED", "1.5"), ("IMPROVD_WAIT", "100000bars"), ("IMPROVD_VOICES", "many"),
    ("IMPROVD_CHORDS", "Q7"), ("IMPROVD_STATS", "perhaps"), ("IMPROVD_MAX_BARS", "1e400"),
])
def test_environment_values_of_the_wrong_type_or_range_name_the_key(name, value):
    with pytest.raises(ConfigError) as e:
        load_settings(None, {}, environ={name: value})
    assert "\n" not in str(e.value)
    assert name[8:].lower() in str(e.value) or value in str(e.value)


def test_every_accepted_number_is_finite_and_every_duration_bounded(toml):
    s = load_settings(toml('max_note_beats = 64\nwait = "64bars"\nmax_listen = "30s"\nseed = 0\n'), {}, environ={})
    assert s.max_note_ticks == 64 * TICKS_PER_BEAT and s.wait_ticks == 64 * BAR_TICKS
    assert s.max_listen_ticks == 60 * TICKS_PER_BEAT
    with pytest.raises(ConfigError, match="64 bars"):
        parse_duration_ticks("65bars", 120, "wait")
    with pytest.raises(ConfigError, match="64 bars"):
        parse_duration_ticks("60s", 400, "wait")  # 100 bars at 400 BPM


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "folder", "binary", "latin1", "too_big"])
@pytest.mark.parametrize("key", ["config", "chords_file"])
def test_config_and_chord_files_are_read_bounded_in_one_line(tmp_path, kind, key):
    """/dev/zero as --config took 7 GB in 30 s; a FIFO blocked the start."""
    import os
    import time

    path = {"dev_zero": lambda: "/dev/zero", "folder": lambda: str(tmp_path)}.get(kind, lambda: None)()
    if path is None:
        f = tmp_path / f"{kind}.txt"
        if kind == "fifo":
            os.mkfifo(f)
        else:
            f.write_bytes({"binary": b"tempo = 90\n\0\x01\x02", "latin1": "chords = \"Ab\xe9\"\n".encode("latin-1"),
                           "too_big": b"# x\n" * 300_000}[kind])
        path = str(f)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        if key == "config":
            load_settings(path, {}, environ={})
        else:
            load_settings(None, {"chords_file": path}, environ={})
    assert time.perf_counter() - t0 < 1
    msg = str(e.value)
    assert "\n" not in msg and path in msg


def test_a_chord_file_is_checked_when_the_settings_load(tmp_path, toml):
    """So a SIGHUP reload with a broken chart is refused before anything changes."""
    chart = tmp_path / "tune.chords"
    chart.write_text("Dm7 G7 | Cmaj7 | |\n| A7 | Dm7 | G7 ||\n")
    s = load_settings(toml(f'chords_file = "{chart}"\n'), {}, environ={})
    from improvd.config import load_chart

    assert len(load_chart(s).bars) == 6  # the empty bar holds Cmaj7
    chart.write_text("Dm7 G7 | Cmaj7 | foo\n")
    with pytest.raises(ConfigError, match="chords_file .*'foo'"):
        load_settings(toml(f'chords_file = "{chart}"\n'), {}, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(None, {"chords_file": str(tmp_path / "gone.chords")}, environ={})
