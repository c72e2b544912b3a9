"""The ``improvd`` command: run, replay, ports, plot, train, export, evaluate, generate, bench.

Every failure the user can fix is an ImprovdError: one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
import os
import sys
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer

from improvd import ImprovdError

# rich_markup_mode=None: help is printed as written, so "[cc]" and ".[train]" keep their brackets
# (rich markup ate them), and click wraps it to the terminal's width, 80 columns included.
app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]},
                  help="improvd: a real-time MIDI improvisation daemon.")


def _version(value: bool) -> None:
    if value:
        from improvd import __version__

        typer.echo(f"improvd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """improvd: a real-time MIDI improvisation daemon."""

# -- options shared by run and replay: one table, so the two stay the same -----------------------
# A setting both commands take is one line here; it reaches Settings by its name (also -> models).
# The rest of a new setting: its Settings field and check (config.py), a README row and a line in
# systemd/improvd.toml, which a test holds to the field list.
def _option(kind, *names: str, help: str):
    return Annotated[Optional[kind], typer.Option(*names, help=help)]


Config = _option(Path, "--config", help="TOML settings file (default /etc/improvd/improvd.toml if present)")
SHARED_OPTIONS = {
    "config": Config,
    "model": _option(str, "--model", "-m", help="bundled model name or path to NAME.json (default: jazz)"),
    "model_dir": _option(str, "--model-dir", help="folder searched first for model names (a path list, like IMPROVD_MODEL_DIR)"),
    "provider": _option(str, "--provider", help="onnxruntime provider: cpu (default) | cuda | auto; cuda needs improvd[gpu]"),
    "mode": _option(str, "--mode", help="call-response | duet | harmonize"),
    "wait": _option(str, "--wait", help="silence before answering: 1bar, 2beats, 500ms"),
    "bars": _option(int, "--bars", help="answer length in bars (default: the phrase's, at most 8)"),
    "tempo": _option(str, "--tempo", help="BPM, or follow: the performer's own time (the default when no tempo, clock or tap key is set)"),
    "swing": _option(float, "--swing", help="0 straight .. 1/3 triplet swing .. 0.75"),
    "chords": _option(str, "--chords", help='chord chart looped over bars, e.g. "Dm7 G7 | Cmaj7 %"'),
    "chords_file": _option(Path, "--chords-file", help="file holding a chord chart"),
    "split": _option(int, "--split", help="notes below this MIDI pitch are read as chords"),
    "temperature": _option(float, "--temperature", "-t", help="sampling temperature (0 = greedy)"),
    "top_p": _option(float, "--top-p", help="nucleus sampling mass"),
    "echo": _option(float, "--echo", help="0..1: how much answers develop motifs of the call (default: the model's; 0 = the model alone)"),
    "seed": _option(int, "--seed", help="seed for a reproducible answer"),
    "voices": _option(int, "--voices", help="harmonize: most notes added"),
    "channel_out": _option(int, "--channel-out", help="MIDI channel improvd plays on (1-16)"),
    "channel_in": _option(int, "--channel-in", help="only listen to this channel (1-16)"),
    "metronome": _option(str, "--metronome", help="off | count-in | on"),
    "metronome_channel": _option(int, "--metronome-channel", help="channel of the clicks (10 = drums)"),
    "also": _option(list[str], "--also", help="another model to switch to live (repeatable; program change picks)"),
    "min_phrase": _option(str, "--min-phrase", help="shorter phrases get no answer: 2beats, 1bar"),
    "max_listen": _option(str, "--max-listen", help="answer anyway after listening this long: 8bars"),
    "tap_key": _option(int, "--tap-key", help="three taps of this MIDI note set the tempo"),
    "key": _option(str, "--key", help="folk: ABC key of the phrase (G, Dmin, A Dorian) or auto"),
    "meter": _option(str, "--meter", help="folk: ABC meter, e.g. 6/8"),
}
ModelDir, Provider = SHARED_OPTIONS["model_dir"], SHARED_OPTIONS["provider"]


def with_shared_options(command):
    """``command`` takes SHARED_OPTIONS too, as keyword options after its own; it receives
    them among its keyword arguments (typer reads the signature built here)."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option)
             for name, option in SHARED_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return command(*args, **kwargs)

    hints = typing.get_type_hints(command, include_extras=True)
    wrapper.__signature__ = signature.replace(parameters=[p.replace(annotation=hints.get(p.name, p.annotation))
                                                         for p in own] + added)
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    return wrapper


def _flags(values: dict) -> dict:
    """The options given on the command line that are settings (None: not given)."""
    from improvd.config import Settings

    names = {f.name for f in dataclasses.fields(Settings)}
    values = {("models" if k == "also" else k): v for k, v in values.items()}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if k in names and v is not None}


def _use_runtime(settings) -> None:
    """Model folders and the onnxruntime provider belong to the process: set once, before any
    model loads, so --also models, a SIGHUP reload and the evaluators all see the same."""
    from improvd.models import use_model_dir
    from improvd.models.runtime import use_provider

    use_model_dir(settings.model_dir)
    use_provider(settings.provider)


def _runtime_only(model_dir: str | None, provider: str | None) -> None:
    """For the offline commands, which have no --config: the same keys from the default file,
    the environment and the flags."""
    from improvd.config import load_settings

    _use_runtime(load_settings(None, {"model_dir": model_dir, "provider": provider}))


def _setup_logging(level: str = "info") -> None:
    from improvd import logs

    logs.setup(level)


@app.command()
@with_shared_options
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
    record: Annotated[Optional[Path], typer.Option("--record", help="keep every take as MIDI + piano roll in this folder")] = None,
    passthrough: Annotated[Optional[bool], typer.Option("--passthrough/--no-passthrough", help="the performer's notes go on to the output too (default on)")] = None,
    passthrough_channel: Annotated[Optional[int], typer.Option("--passthrough-channel", help="put passed-through notes on this channel")] = None,
    **shared,
):
    """Listen on a MIDI input and play back on a MIDI output, live."""
    from improvd.config import load_settings
    from improvd.live import Daemon

    config = shared.get("config")
    flags = _flags({**locals(), **shared})
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ImprovdError(f"--duration {duration} is not a time: use a number of seconds above 0, e.g. 3600")
    settings = load_settings(config, flags)
    _setup_logging(settings.log_level)
    _use_runtime(settings)
    daemon = Daemon(settings, config, flags)
    daemon.leave_ports = True
    code = daemon.run(duration)
    # Past this point nothing may tear the MIDI clients down from this process (Port.leave):
    # the process ends here, with what it printed flushed.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def panic(
    out_port: Annotated[Optional[str], typer.Option("--out", help="the synth's port, by case-insensitive substring (default: the config's out_port)")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="alsa | jack (default: ALSA where the kernel has it)")] = None,
    channels: Annotated[Optional[str], typer.Option("--channels", help="MIDI channels to silence, e.g. 1,10 (default: those improvd uses; 'all' for 1-16)")] = None,
    config: Config = None,
):
    """All notes off at the synth: pedal up, CC123, CC120 and a note-off for every key. The
    systemd unit runs it after the daemon stops, so even SIGKILL ends in silence."""
    from improvd.config import load_settings
    from improvd.panic import panic as do_panic

    settings = load_settings(config, {k: v for k, v in (("out_port", out_port), ("backend", backend)) if v is not None})
    chosen = None
    if channels:
        try:
            chosen = list(range(16)) if channels.strip() == "all" else sorted({int(c) - 1 for c in channels.split(",") if c.strip()})
        except ValueError:
            chosen = [-1]
        if not chosen or any(not 0 <= c <= 15 for c in chosen):
            raise ImprovdError(f"--channels {channels!r} is not a channel list: write e.g. 1,10 or all")
    _setup_logging(settings.log_level)
    n = do_panic(settings, chosen)
    typer.echo(f"panic: {n} messages sent to {settings.out_port}")


@app.command()
@with_shared_options
def replay(
    performance: Annotated[Path, typer.Argument(help="recorded MIDI file: the performer")],
    output: Annotated[Path, typer.Option("--output", "-o", help="MIDI file to write: performer + improvd tracks")],
    track: Annotated[Optional[list[int]], typer.Option("--track", help="only these tracks of the input (repeatable)")] = None,
    beats: Annotated[Optional[str], typer.Option("--beats", help="only this window of beats, e.g. 476:548")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="also draw a piano roll PNG")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="play it through real ports on the wall clock instead")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="for --realtime: alsa | jack")] = None,
    controls: Annotated[bool, typer.Option("--controls", help="the recording's controllers steer improvd too (default: the sustain pedal only)")] = False,
    **shared,
):
    """Drive the engine from a MIDI file on a virtual clock and write what it answers."""
    from improvd.config import load_settings
    from improvd.midi.files import read_midi
    from improvd.models.runtime import used
    from improvd.live import replay_realtime
    from improvd.replay import (check_replay_size, parse_beats, replay as do_replay, select,
                                track_summary, write_result)

    config = shared.get("config")
    flags = _flags({**locals(), **shared})
    perf = read_midi(performance)
    window = parse_beats(beats) if beats else None
    perf = select(perf, set(track) if track else None, window)
    if not track and len({n.track for n in perf.notes}) > 2:
        typer.echo(f"improvd: note: {performance} has notes on {len({n.track for n in perf.notes})} tracks, all taken as "
                   f"the performer; to answer one soloist pick its track with --track N: {track_summary(perf, 5)}", err=True)
    if not realtime:
        check_replay_size(perf)
    settings = load_settings(config, flags)
    if "tempo" not in flags or settings.follows_performer and flags["tempo"] == "follow":
        # the file's tempo: fixed, or where following starts when nothing fixes the time
        if not 20 <= perf.tempo <= 400:
            raise ImprovdError(f"MIDI file {performance} is at {perf.tempo:.4g} BPM, outside the 20..400 improvd plays: pass --tempo BPM")
        settings = dataclasses.replace(settings, tempo=round(perf.tempo, 3))
    _use_runtime(settings)
    res = replay_realtime(perf, settings) if realtime else do_replay(perf, settings, controls=controls)
    write_result(res, output)
    ons = sum(1 for _, m in res.machine if m.type == "note_on")
    p50, p99 = res.engine.stats.step_percentiles()
    typer.echo(f"wrote {output}: {len(res.performer) // 2} performer notes, {ons} improvd notes "
               f"(model {res.engine.model.card.name} on {used()}, mode {settings.mode}, {_tempo_said(res.engine)}; step p50 {p50:.3f} ms p99 {p99:.3f} ms)")
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
    """Train a model (needs the train extra: pip install -e '.[train]')."""
    options = dict(locals())  # every parameter: a train option of improvd.training.config, passed on as it came
    from improvd.registry import offline

    summary = offline("train")(**options)
    out = summary["config"]["out"]
    typer.echo(f"run {out}: best valid loss {summary['best_valid_loss']:.4f} after {summary['epochs_run']} epochs, "
               f"{summary['wall_seconds']:.1f}s on {summary['device_name']}; export with `improvd export {out} -o models/NAME`")


@app.command()
def export(run_dir: Annotated[Path, typer.Argument(help="a run folder from improvd train")],
           output: Annotated[Path, typer.Option("--output", "-o", help="models/NAME (writes NAME.onnx and NAME.json)")]):
    """Export a trained run to one ONNX step graph and its model card."""
    from improvd.registry import offline

    output = output.with_suffix("") if output.suffix in (".onnx", ".json") else output
    typer.echo(f"wrote {offline('export')(run_dir, output)}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="bundled model name or path to NAME.json; or timing: the tempo tracker on ../shared/data/timing")],
    data: Annotated[Optional[list[str]], typer.Option("--data", help="evaluation data file or folder (repeatable; default: the shared data's valid split); scored whole unless --split asks")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="valid | train | test: valid or train of --data as training splits it; test names a held-out --data, scored whole")] = None,
    n: Annotated[Optional[int], typer.Option("--n", help="jazz: solos compared (default all); folk: tunes sampled (default 100); rnnrbm: Gibbs draws a frame (default 10)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    task: Annotated[Optional[str], typer.Option("--task", help="response: answers to phrases of WJazzD solos (relevance and degeneration tables; --n limits the pairs); default: the family's own evaluation")] = None,
    also: Annotated[Optional[list[str]], typer.Option("--also", help="--task response: another model answering beside MODEL (repeatable)")] = None,
    model_dir: ModelDir = None, provider: Provider = None,
):
    """Likelihood and musical statistics of a model on held-out data."""
    from improvd.models import resolve
    from improvd.models.card import ModelCard
    from improvd.registry import RUNTIME_EVALUATIONS, offline, runtime_evaluation

    _runtime_only(model_dir, provider)
    if model in RUNTIME_EVALUATIONS:  # the daemon's own listening, not a model (--n: items a corpus)
        runtime_evaluation(model)(model, list(data or []), split, n or 0, seed)
        return
    card = ModelCard.load(resolve(model))
    if task not in (None, "response"):
        raise ImprovdError(f"--task {task!r} is not a task: use response, or leave it out for the family's own evaluation")
    if task == "response":
        from improvd.evaluation.response import evaluate as respond

        respond(model, list(data or []), split, n, seed, list(also or []))
        return
    offline("evaluate")(card.family, model, list(data or []), split, n, seed)


@app.command()
def generate(
    model: Annotated[str, typer.Argument(help="bundled model name or path to NAME.json")],
    output: Annotated[Path, typer.Option("--output", "-o")],
    length: Annotated[Optional[int], typer.Option("--steps", "--bars", help="length (steps, bars or values, by family)")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t")] = None,
    primer: Annotated[Optional[str], typer.Option("--primer", help="start to continue (folk: ABC text)")] = None,
    model_dir: ModelDir = None, provider: Provider = None,
):
    """Generate offline: MIDI (and ABC for folk) plus a piano-roll PNG."""
    from improvd.models import resolve
    from improvd.models.card import ModelCard
    from improvd.registry import offline

    _runtime_only(model_dir, provider)
    card = ModelCard.load(resolve(model))
    for p in offline("generate")(card.family, model, output, length, seed, temperature, primer):
        typer.echo(f"wrote {p}")


@app.command()
def bench(
    models: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="models to measure (default: all bundled)")] = None,
    steps: Annotated[int, typer.Option("--steps", help="model steps measured per model")] = 2000,
    jack: Annotated[bool, typer.Option("--jack/--no-jack", help="also measure timing over a JACK loopback")] = True,
    seconds: Annotated[float, typer.Option("--seconds", help="length of the loopback run")] = 10.0,
    rt_priority: Annotated[int, typer.Option("--rt-priority", help="run the loopback daemon's engine thread at SCHED_FIFO")] = 0,
    load: Annotated[int, typer.Option("--load", help="also measure with N busy processes running, beside the unloaded figures")] = 0,
    runs: Annotated[int, typer.Option("--runs", help="harmonize reaction runs (of --seconds each), counted against the target")] = 1,
    soak: Annotated[bool, typer.Option("--soak", help="instead: replay --minutes of performance at full speed, memory and late notes")] = False,
    minutes: Annotated[float, typer.Option("--minutes", help="length of the soak, minutes of music")] = 60.0,
    flood: Annotated[bool, typer.Option("--flood", help="instead: flood the input over JACK for --seconds at --rate")] = False,
    rate: Annotated[int, typer.Option("--rate", help="flood: note events per second")] = 10000,
    model_dir: ModelDir = None, provider: Provider = None,
):
    """Step cost (onnxruntime vs torch eager), output timing error, memory and start-up time."""
    from improvd import bench as b

    _runtime_only(model_dir, provider)
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
    b.main(models or [], steps, jack, seconds, rt_priority, load, runs)


def _tempo_said(engine) -> str:
    heard = engine.performer.heard
    if engine.performer.following and heard is not None and heard.locked:
        return f"followed the performer at {heard.bpm:.1f} BPM"
    if engine.performer.following:
        return f"{engine.settings.tempo:g} BPM (the performer's beat not found)"
    return f"{engine.settings.tempo:g} BPM"


def _usage_error(e) -> None:
    """A usage error is one line when stderr is a log or a pipe (systemd, CI, a wrapper script);
    a person at a terminal gets click's usage line and hint as well."""
    if sys.stderr.isatty():
        e.show()
    else:
        ctx = getattr(e, "ctx", None)
        hint = f" (see {ctx.command_path} -h)" if ctx is not None else ""
        from improvd.logs import error_line

        print(error_line(f"{' '.join(e.format_message().split())}{hint}"), file=sys.stderr)
    sys.exit(e.exit_code)


def main() -> None:
    # click's exceptions module, wherever this typer keeps it (newer typers vendor click)
    click = sys.modules[typer.BadParameter.__module__]
    try:
        code = typer.main.get_command(app).main(prog_name="improvd", standalone_mode=False)
    except ImprovdError as e:
        from improvd.logs import error_line

        print(error_line(str(e)), file=sys.stderr)
        sys.exit(2)
    except getattr(click, "NoArgsIsHelpError", ()) as e:
        e.show()  # bare `improvd`: the help, as before
        sys.exit(e.exit_code)
    except click.ClickException as e:
        _usage_error(e)
    except typer.Abort:
        print("improvd: aborted", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
