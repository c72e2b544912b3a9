"""The ``improvd`` command: run, replay, ports, plot, train, export, evaluate, generate, bench.

Every failure the user can fix is an ImprovdError: one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from improvd import ImprovdError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="improvd: a real-time MIDI improvisation daemon.")

# -- options shared by run and replay (one definition, so the two stay the same) --------------
Config = Annotated[Optional[Path], typer.Option("--config", help="TOML settings file (default /etc/improvd/improvd.toml if present)")]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help="bundled model name or path to NAME.json (default: jazz)")]
Mode = Annotated[Optional[str], typer.Option("--mode", help="call-response | duet | harmonize")]
Wait = Annotated[Optional[str], typer.Option("--wait", help="silence before answering: 1bar, 2beats, 500ms")]
Bars = Annotated[Optional[int], typer.Option("--bars", help="answer length in bars (default: the phrase's, at most 8)")]
Tempo = Annotated[Optional[float], typer.Option("--tempo", help="BPM")]
Swing = Annotated[Optional[float], typer.Option("--swing", help="0 straight .. 1/3 triplet swing .. 0.75")]
Chords = Annotated[Optional[str], typer.Option("--chords", help='chord chart looped over bars, e.g. "Dm7 G7 | Cmaj7 %"')]
ChordsFile = Annotated[Optional[Path], typer.Option("--chords-file", help="file holding a chord chart")]
Split = Annotated[Optional[int], typer.Option("--split", help="notes below this MIDI pitch are read as chords")]
Temp = Annotated[Optional[float], typer.Option("--temperature", "-t", help="sampling temperature (0 = greedy)")]
TopP = Annotated[Optional[float], typer.Option("--top-p", help="nucleus sampling mass")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="seed for a reproducible answer")]
Voices = Annotated[Optional[int], typer.Option("--voices", help="harmonize: most notes added")]
ChOut = Annotated[Optional[int], typer.Option("--channel-out", help="MIDI channel improvd plays on (1-16)")]
ChIn = Annotated[Optional[int], typer.Option("--channel-in", help="only listen to this channel (1-16)")]
Metronome = Annotated[Optional[str], typer.Option("--metronome", help="off | count-in | on")]
MetroCh = Annotated[Optional[int], typer.Option("--metronome-channel", help="channel of the clicks (10 = drums)")]
Models = Annotated[Optional[list[str]], typer.Option("--also", help="another model to switch to live (repeatable; program change picks)")]
MinPhrase = Annotated[Optional[str], typer.Option("--min-phrase", help="shorter phrases get no answer: 2beats, 1bar")]
MaxListen = Annotated[Optional[str], typer.Option("--max-listen", help="answer anyway after listening this long: 8bars")]
TapKey = Annotated[Optional[int], typer.Option("--tap-key", help="three taps of this MIDI note set the tempo")]
Key = Annotated[Optional[str], typer.Option("--key", help="folk: ABC key of the phrase (G, Dmin, A Dorian) or auto")]
Meter = Annotated[Optional[str], typer.Option("--meter", help="folk: ABC meter, e.g. 6/8")]

SHARED = ("model", "mode", "wait", "bars", "tempo", "swing", "chords", "chords_file", "split", "temperature",
          "top_p", "seed", "voices", "channel_out", "channel_in", "metronome", "metronome_channel", "models",
          "min_phrase", "max_listen", "tap_key", "key", "meter")


def _flags(values: dict) -> dict:
    values = {("models" if k == "also" else k): v for k, v in values.items()}
    out = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if k in SHARED or k in (
        "in_port", "out_port", "backend", "virtual", "clock_in", "clock_out", "stats", "client_name", "rt_priority",
        "passthrough", "passthrough_channel")}
    return {k: v for k, v in out.items() if v is not None}


def _setup_logging(level: str = "info") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="improvd: %(message)s")


@app.command()
def run(
    in_port: Annotated[Optional[str], typer.Option("--in", help="input port, matched by case-insensitive substring")] = None,
    out_port: Annotated[Optional[str], typer.Option("--out", help="output port, matched by case-insensitive substring")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="alsa | jack (default: ALSA where the kernel has it)")] = None,
    virtual: Annotated[Optional[bool], typer.Option("--virtual/--no-virtual", help="open virtual ports others connect to")] = None,
    client_name: Annotated[Optional[str], typer.Option("--name", help="MIDI client name")] = None,
    clock_in: Annotated[Optional[bool], typer.Option("--clock-in/--no-clock-in", help="follow incoming MIDI clock")] = None,
    clock_out: Annotated[Optional[bool], typer.Option("--clock-out/--no-clock-out", help="send MIDI clock")] = None,
    stats: Annotated[Optional[bool], typer.Option("--stats/--no-stats", help="print figures every 10 s")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="stop after this many seconds")] = None,
    rt_priority: Annotated[Optional[int], typer.Option("--rt-priority", help="SCHED_FIFO priority of the engine thread (0 = off)")] = None,
    config: Config = None, model: Model = None, mode: Mode = None, wait: Wait = None, bars: Bars = None,
    tempo: Tempo = None, swing: Swing = None, chords: Chords = None, chords_file: ChordsFile = None,
    split: Split = None, temperature: Temp = None, top_p: TopP = None, seed: Seed = None, voices: Voices = None,
    channel_out: ChOut = None, channel_in: ChIn = None, metronome: Metronome = None, metronome_channel: MetroCh = None,
    also: Models = None, min_phrase: MinPhrase = None, max_listen: MaxListen = None, tap_key: TapKey = None,
    key: Key = None, meter: Meter = None,
    passthrough: Annotated[Optional[bool], typer.Option("--passthrough/--no-passthrough", help="the performer's notes go on to the output too (default on)")] = None,
    passthrough_channel: Annotated[Optional[int], typer.Option("--passthrough-channel", help="put passed-through notes on this channel")] = None,
):
    """Listen on a MIDI input and play back on a MIDI output, live."""
    from improvd.config import load_settings
    from improvd.live import Daemon

    flags = _flags(locals())
    settings = load_settings(config, flags)
    _setup_logging(settings.log_level)
    Daemon(settings, config, flags).run(duration)


@app.command()
def replay(
    performance: Annotated[Path, typer.Argument(help="recorded MIDI file: the performer")],
    output: Annotated[Path, typer.Option("--output", "-o", help="MIDI file to write: performer + improvd tracks")],
    track: Annotated[Optional[list[int]], typer.Option("--track", help="only these tracks of the input (repeatable)")] = None,
    beats: Annotated[Optional[str], typer.Option("--beats", help="only this window of beats, e.g. 476:548")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="also draw a piano roll PNG")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="play it through real ports on the wall clock instead")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="for --realtime: alsa | jack")] = None,
    config: Config = None, model: Model = None, mode: Mode = None, wait: Wait = None, bars: Bars = None,
    tempo: Tempo = None, swing: Swing = None, chords: Chords = None, chords_file: ChordsFile = None,
    split: Split = None, temperature: Temp = None, top_p: TopP = None, seed: Seed = None, voices: Voices = None,
    channel_out: ChOut = None, channel_in: ChIn = None, metronome: Metronome = None, metronome_channel: MetroCh = None,
    also: Models = None, min_phrase: MinPhrase = None, max_listen: MaxListen = None, tap_key: TapKey = None,
    key: Key = None, meter: Meter = None,
):
    """Drive the engine from a MIDI file on a virtual clock and write what it answers."""
    from improvd.config import load_settings
    from improvd.midi.files import read_midi
    from improvd.replay import replay as do_replay, replay_realtime, select, write_result

    flags = _flags(locals())
    perf = read_midi(performance)
    window = None
    if beats:
        try:
            a, b = (float(x) for x in beats.split(":"))
            window = (a, b)
        except ValueError:
            raise ImprovdError(f"--beats {beats!r} is not a window: write START:END in beats, e.g. 476:548") from None
    perf = select(perf, set(track) if track else None, window)
    if "tempo" not in flags:
        flags["tempo"] = round(perf.tempo, 3)
    settings = load_settings(config, flags)
    res = replay_realtime(perf, settings) if realtime else do_replay(perf, settings)
    write_result(res, output)
    ons = sum(1 for _, m in res.machine if m.type == "note_on")
    p50, p99 = res.engine.stats.step_percentiles()
    typer.echo(f"wrote {output}: {len(res.performer) // 2} performer notes, {ons} improvd notes "
               f"(model {res.engine.model.card.name}, mode {settings.mode}, {settings.tempo:g} BPM; step p50 {p50:.3f} ms p99 {p99:.3f} ms)")
    if plot:
        from improvd.plot import piano_roll
        typer.echo(f"wrote {piano_roll(output, plot)}")


@app.command()
def ports(backend: Annotated[str, typer.Option("--backend")] = "auto"):
    """List MIDI inputs and outputs."""
    from improvd.midi.ports import list_ports

    ins, outs = list_ports(backend)
    typer.echo("inputs:")
    for p in ins:
        typer.echo(f"  {p}")
    typer.echo("outputs:")
    for p in outs:
        typer.echo(f"  {p}")


@app.command()
def learn(
    in_port: Annotated[Optional[str], typer.Option("--in", help="the controller's port (default: a virtual port)")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend")] = None,
    config: Annotated[Path, typer.Option("--config", help="config file to write the [cc] table into")] = Path("improvd.toml"),
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait for each control")] = 20.0,
    only: Annotated[Optional[list[str]], typer.Option("--control", help="learn only these controls (repeatable)")] = None,
):
    """MIDI learn: move each control in turn; the CCs go into the config's [cc] table."""
    from improvd.config import load_settings
    from improvd.learn import CONTROLS, learn as do_learn

    bad = [c for c in (only or []) if c not in CONTROLS]
    if bad:
        raise ImprovdError(f"--control {bad[0]!r} is not a control: use {', '.join(CONTROLS)}")
    flags = {k: v for k, v in {"in_port": in_port, "backend": backend}.items() if v is not None}
    settings = load_settings(config if config.exists() else None, flags)
    do_learn(settings, config, tuple(only or CONTROLS), timeout, typer.echo)


@app.command()
def render(
    midi: Annotated[Path, typer.Argument(help="MIDI file, e.g. a replay's answer")],
    output: Annotated[Path, typer.Option("--output", "-o", help=".wav, .flac or .ogg")],
    soundfont: Annotated[Optional[str], typer.Option("--soundfont", help="a General MIDI .sf2")] = None,
):
    """Render a MIDI file to audio through FluidSynth."""
    from improvd.render import render as do_render

    typer.echo(f"wrote {do_render(midi, output, soundfont)}")


@app.command()
def plot(midi: Annotated[Path, typer.Argument()], output: Annotated[Path, typer.Option("--output", "-o")] = Path("roll.png")):
    """Draw a MIDI file as a piano roll, one colour per track."""
    from improvd.plot import piano_roll

    typer.echo(f"wrote {piano_roll(midi, output)}")


@app.command()
def train(
    family: Annotated[str, typer.Argument(help="jazz | rnnrbm | folk")],
    preset: Annotated[str, typer.Option("--preset", help="jazz: default, deepjazz, tiny; rnnrbm: default, tutorial; folk: default, mit")] = "default",
    data: Annotated[Optional[list[str]], typer.Option("--data", help="file, folder or music21:NAME (repeatable)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="run folder (default runs/FAMILY-PRESET)")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    hidden: Annotated[Optional[int], typer.Option("--hidden")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cuda | cpu")] = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the run folder's last checkpoint")] = False,
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast on GPU")] = True,
    max_items: Annotated[Optional[int], typer.Option("--max-items", help="use only the first N pieces")] = None,
    chords: Annotated[Optional[Path], typer.Option("--chords", help="chords file for MIDI files without one")] = None,
):
    """Train a model (needs the train extra: pip install -e '.\[train]')."""
    from improvd.registry import TRAIN, lookup

    fn = lookup(TRAIN, family, preset)
    from training.loop import TrainConfig

    cfg = TrainConfig(family=family, preset=preset, data=list(data or []), out=str(out or Path("runs") / f"{family}-{preset}"),
                      epochs=epochs, batch_size=batch_size, lr=lr, hidden=hidden, device=device, seed=seed,
                      resume=resume, amp=amp, max_items=max_items, extra={"chords": str(chords) if chords else None})
    summary = fn(cfg)
    typer.echo(f"run {cfg.out}: best valid loss {summary['best_valid_loss']:.4f} after {summary['epochs_run']} epochs, "
               f"{summary['wall_seconds']:.1f}s on {summary['device_name']}; export with `improvd export {cfg.out} -o models/NAME`")


@app.command()
def export(run_dir: Annotated[Path, typer.Argument(help="a run folder from improvd train")],
           output: Annotated[Path, typer.Option("--output", "-o", help="models/NAME (writes NAME.onnx and NAME.json)")]):
    """Export a trained run to one ONNX step graph and its model card."""
    from improvd.registry import EXPORT, lookup

    try:
        import torch
    except ImportError:
        raise ImprovdError("export needs torch: pip install -e '.[train]'") from None
    ck = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    if not ck.exists():
        raise ImprovdError(f"run {run_dir} has no checkpoint (best.pt or last.pt): train first with `improvd train`")
    cfg = torch.load(ck, map_location="cpu", weights_only=False).get("config", {})
    fn = lookup(EXPORT, cfg.get("family", "?"), cfg.get("preset", "default"))
    output = output.with_suffix("") if output.suffix in (".onnx", ".json") else output
    typer.echo(f"wrote {fn(run_dir, output)}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="bundled model name or path to NAME.json")],
    data: Annotated[Optional[list[str]], typer.Option("--data", help="evaluation data file or folder")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="valid | test (for files that hold splits)")] = None,
    n: Annotated[int, typer.Option("--n", help="generated samples to compare")] = 20,
    seed: Annotated[int, typer.Option("--seed")] = 0,
):
    """Likelihood and musical statistics of a model on held-out data."""
    from improvd.models import resolve
    from improvd.models.card import ModelCard
    from improvd.registry import EVALUATE, lookup

    card = ModelCard.load(resolve(model))
    lookup(EVALUATE, card.family)(model, list(data or []), split, n, seed)


@app.command()
def generate(
    model: Annotated[str, typer.Argument(help="bundled model name or path to NAME.json")],
    output: Annotated[Path, typer.Option("--output", "-o")],
    length: Annotated[Optional[int], typer.Option("--steps", "--bars", help="length (steps, bars or values, by family)")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t")] = None,
    primer: Annotated[Optional[str], typer.Option("--primer", help="start to continue (folk: ABC text)")] = None,
):
    """Generate offline: MIDI (and ABC for folk) plus a piano-roll PNG."""
    from improvd.models import resolve
    from improvd.models.card import ModelCard
    from improvd.registry import GENERATE, lookup

    card = ModelCard.load(resolve(model))
    for p in lookup(GENERATE, card.family)(model, output, length, seed, temperature, primer):
        typer.echo(f"wrote {p}")


@app.command()
def bench(
    models: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="models to measure (default: all bundled)")] = None,
    steps: Annotated[int, typer.Option("--steps", help="model steps measured per model")] = 2000,
    jack: Annotated[bool, typer.Option("--jack/--no-jack", help="also measure timing over a JACK loopback")] = True,
    seconds: Annotated[float, typer.Option("--seconds", help="length of the loopback run")] = 10.0,
    rt_priority: Annotated[int, typer.Option("--rt-priority", help="run the loopback daemon's engine thread at SCHED_FIFO")] = 0,
    soak: Annotated[bool, typer.Option("--soak", help="instead: replay --minutes of performance at full speed, memory and late notes")] = False,
    minutes: Annotated[float, typer.Option("--minutes", help="length of the soak, minutes of music")] = 60.0,
    flood: Annotated[bool, typer.Option("--flood", help="instead: flood the input over JACK for --seconds at --rate")] = False,
    rate: Annotated[int, typer.Option("--rate", help="flood: note events per second")] = 10000,
):
    """Step cost (onnxruntime vs torch eager), output timing error, memory and start-up time."""
    from improvd import bench as b

    if soak:
        r = b.soak(minutes)
        typer.echo(f"soak: {r['music_minutes']:.1f} min of music replayed in {r['wall_seconds']:.1f} s ({r['speed']:.0f}x real time); "
                   f"{r['notes_in']} notes in, {r['notes_out']} out; resident memory {r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f} MB "
                   f"(growth {r['rss_growth_mb']:+.2f} MB after warm-up); late notes {r['late_planned']}; hanging {r['hanging']} "
                   f"({r['on']} on / {r['off']} off)")
        return
    if flood:
        r = b.flood(seconds, rate, rt_priority=rt_priority)
        if "error" in r:
            raise ImprovdError(f"flood needs a JACK server: {r['error']}")
        typer.echo(f"flood: {r['sent_events']} events in {seconds:g} s ({r['rate_achieved']:.0f}/s, sysex and garbage mixed in); "
                   f"timing sent-minus-due during it p50 {r.get('sent_p50', float('nan')):.3f} ms p99 {r.get('sent_p99', float('nan')):.3f} ms "
                   f"over {r['out_messages_during']} messages; memory growth {r['rss_growth_mb']:+.2f} MB; dropped {r['dropped']}, "
                   f"ignored {r['ignored']}, passthrough coalesced {r['coalesced']}; notes left hanging at the far end: {len(r['hanging'])}")
        return
    b.main(models or [], steps, jack, seconds, rt_priority)


def main() -> None:
    try:
        app()
    except ImprovdError as e:
        print(f"improvd: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
