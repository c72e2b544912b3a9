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

