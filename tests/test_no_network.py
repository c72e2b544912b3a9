"""improvd opens no internet socket and writes nothing but what it was asked to write (issue 11,
item 13: onnxruntime's telemetry, loaded with the library, wrote a device id and an event
database under ~/.cache/Microsoft and links an HTTP client).

Checked on the real process under strace, from start to exit: a socket opened and closed during
start-up counts as much as one held open, and a file written and deleted counts too. HOME is a
fresh empty folder and no XDG_* variable is set, so a cache written "for the user" shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from jackkit import needs_jack

REPO = Path(__file__).resolve().parents[1]
STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="strace is not installed (apt-get install strace; .ci/run does)")

CALLS = ("socket,connect,bind,sendto,sendmsg,open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,"
         "unlink,unlinkat,link,linkat,symlink,symlinkat,truncate")
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
NET = re.compile(r"\b(AF_INET6?|AF_NETLINK|AF_PACKET)\b")


def traced(args: list, tmp_path: Path) -> tuple[subprocess.Popen, Path, Path, Path]:
    """Start `python -m improvd ARGS` under strace in an empty folder with an empty HOME."""
    home, work, log = tmp_path / "home", tmp_path / "work", tmp_path / "strace.txt"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    # Bytecode caches are the interpreter's writes, not improvd's; the first import in a fresh
    # clone would otherwise write them into the source tree.
    env.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    cmd = [STRACE, "-f", "-qq", "--seccomp-bpf", "-e", f"trace={CALLS}", "-o", str(log),
           sys.executable, "-m", "improvd", *map(str, args)]
    p = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, home, work, log


def network_calls(lines: list[str]) -> list[str]:
    return [ln for ln in lines if NET.search(ln)]


def written_paths(lines: list[str], cwd: Path) -> set[Path]:
    """Every path a call that succeeded created, opened for writing, renamed, linked or removed."""
    out = set()
    for ln in lines:
        if re.search(r"= -1 E", ln) or "resumed>" in ln and "= -1" in ln:
            continue
        m = re.search(r"\b(open|openat|creat|mkdir|mkdirat|rename|renameat2?|unlink|unlinkat|link|linkat|symlink|symlinkat|truncate)\(", ln)
        if not m:
            continue
        if m.group(1) in ("open", "openat") and not WRITE_FLAGS.search(ln):
            continue
        for path in re.findall(r'"((?:[^"\\]|\\.)*)"', ln):
            p = Path(path)
            out.add(p if p.is_absolute() else cwd / p)
    return out


def outside(paths: set[Path], allowed: tuple) -> list[str]:
    def ok(p: Path) -> bool:
        s = str(p)
        return s == "/dev/null" or any(s == str(a) or s.startswith(str(a).rstrip("/") + "/") for a in allowed)
    return sorted(str(p) for p in paths if not ok(p))


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@needs_strace
def test_replay_opens_no_network_and_writes_only_its_output(tmp_path):
    p, home, work, log = traced(["replay", REPO / "examples" / "blues_calls.mid", "--chords-file",
                                 REPO / "examples" / "blues_calls.chords", "-o", "answer.mid", "--seed", 7], tmp_path)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    assert "improvd notes" in out
    lines = log.read_text().splitlines()
    assert any("openat(" in ln for ln in lines), "strace saw nothing: the check is blind"
    assert not network_calls(lines), network_calls(lines)[:5]
    assert listing(home) == [], "improvd wrote into HOME"
    assert listing(work) == ["answer.mid"]
    assert outside(written_paths(lines, work), (work,)) == []


@pytest.mark.jack
@needs_jack
@needs_strace
def test_live_daemon_opens_no_network_and_writes_nothing(tmp_path):
    """`improvd run` from start to exit, answering a phrase played into it over JACK."""
    from jackkit import attach, wait_for_port

    name = f"net{uuid.uuid4().hex[:6]}"
    p, home, work, log = traced(["run", "--backend", "jack", "--virtual", "--name", name, "--duration", 9,
                                 "--tempo", 240, "--wait", "2beats"], tmp_path)
    try:
        wait_for_port(f"{name}-out:out", timeout=30)
        rec, kbd = attach(name, channel=1)  # the performer on channel 2, improvd answers on 1
        try:
            kbd.phrase([(60, 1), (62, 1), (64, 1), (67, 1), (65, 1), (64, 1), (62, 1), (60, 1)], beat=0.25)
            t0 = time.time()
            while time.time() - t0 < 5 and not rec.notes(channel=0)[0]:
                time.sleep(0.1)
            answered = rec.notes(channel=0)[0]
        finally:
            rec.close()
            kbd.close()
        _out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err[-2000:]
    assert answered, "improvd never answered: the models did not run, so the check proves little"
    assert "provider CPUExecutionProvider" in err  # the provider is in the ready line
    lines = log.read_text().splitlines()
    assert any("AF_UNIX" in ln for ln in lines), "a JACK client talks to its server over a unix socket; none seen: blind"
    assert not network_calls(lines), network_calls(lines)[:5]
    assert listing(home) == [] and listing(work) == []
    # JACK's own shared memory and sockets live in /dev/shm
    assert outside(written_paths(lines, work), (Path("/dev/shm"),)) == []
