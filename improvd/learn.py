"""``improvd learn``: MIDI learn. For each control in turn, the performer moves the knob, fader
or pad they want; the CC heard is written into the config file's [cc] table.

The [cc] table is edited as text, by hand: the standard library reads TOML (tomllib) but does
not write it, and rewriting the whole file through a TOML writer would drop the comments a
stage config lives on. Only ``key = value`` lines inside [cc] change; the rest stays as written.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from improvd import ImprovdError
from improvd.midi.normalise import normalise

CONTROLS = ("temperature", "mode", "reset", "panic", "mutate", "loop", "tempo", "model", "echo")


def wait_for_cc(port, timeout: float, exclude=(64,)) -> int | None:
    """The first control change moved (a real move: any CC but the sustain pedal)."""
    end = time.perf_counter() + timeout
    queue = port.queue
    while time.perf_counter() < end:
        port.poll()
        while queue:
            data, _t = queue.popleft()
            msg = normalise(data)
            if msg is not None and msg.type == "control_change" and msg.control not in exclude:
                time.sleep(0.3)  # let the rest of the movement pass
                port.poll()
                queue.clear()
                return msg.control
        time.sleep(0.01)
    return None


def update_cc_table(text: str, learned: dict[str, int]) -> str:
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "[cc]"), None)
    if start is None:
        body = "\n".join(f"{k} = {v}" for k, v in learned.items())
        return (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"[cc]\n{body}\n"
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\s*\[", lines[i])), len(lines))
    todo = dict(learned)
    for i in range(start + 1, end):
        m = re.match(r"(\s*)([A-Za-z_]+)(\s*=\s*)([^#]*?)(\s*#.*)?$", lines[i])
        if m and m.group(2) in todo:
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{todo.pop(m.group(2))}{m.group(5) or ''}"
    insert_at = end
    while insert_at > start + 1 and not lines[insert_at - 1].strip():
        insert_at -= 1
    lines[insert_at:insert_at] = [f"{k} = {v}" for k, v in todo.items()]
    return "\n".join(lines) + "\n"


def learn(settings, config: Path, controls=CONTROLS, timeout: float = 20.0, say=print) -> dict[str, int]:
    from improvd.midi.ports import InputPort, pick_api

    api = pick_api(settings.backend)
    port = InputPort(api, f"{settings.client_name}-learn", settings.in_port, settings.virtual or settings.in_port is None)
    learned: dict[str, int] = {}
    try:
        for name in controls:
            say(f"move the control for {name} (waiting {timeout:g} s; leave it to keep CC{getattr(settings.cc, name)})")
            cc = wait_for_cc(port, timeout, exclude=(64, *learned.values()))
            if cc is None:
                say(f"  {name}: nothing moved, keeping CC{getattr(settings.cc, name)}")
                continue
            learned[name] = cc
            say(f"  {name}: CC{cc}")
    finally:
        port.close()
    if learned:
        text = config.read_text() if config.exists() else ""
        new = update_cc_table(text, learned)
        import tomllib
        try:
            tomllib.loads(new)
        except tomllib.TOMLDecodeError as e:
            raise ImprovdError(f"config {config} would not stay valid TOML after learning ({e}): fix it by hand first") from None
        tmp = config.with_name(f".{config.name}.part")
        tmp.write_text(new)
        tmp.replace(config)
        say(f"wrote {len(learned)} controls to {config} [cc]")
    return learned
