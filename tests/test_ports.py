"""Opening a port by name through rtmidi's index: the listing can move between our lookup and
rtmidi's own (JACK clients coming and going); the port checks and opens again."""

import pytest

from improvd.midi.ports import OutputPort, PortError


class ScriptedRtmidi:
    """Answers get_ports() from a script of listings (the last one repeats) and records opens."""

    def __init__(self, listings):
        self.listings = list(listings)
        self.opened, self.closed = [], 0

    def get_ports(self):
        return self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]

    def open_port(self, index, name):
        self.opened.append(index)

    def close_port(self):
        self.closed += 1


def _port(rt):
    port = object.__new__(OutputPort)  # no real client: only the open logic is under test
    port.rt, port.kind, port.pattern, port.virtual = rt, "output", "synth", False
    port.base_client, port.port_name, port.connected = "improvd", "out", False
    return port


def test_a_listing_that_moved_during_the_open_is_opened_again():
    before = ["a:midi_out", "synth:midi_in"]
    moved = ["b:new_client", "a:midi_out", "synth:midi_in"]
    rt = ScriptedRtmidi([before, moved, moved, moved])
    port = _port(rt)
    port._open()
    assert rt.opened == [1, 2] and rt.closed == 1  # index 1 named another port after the open
    assert port.connected and port.source == "synth:midi_in"


def test_a_steady_listing_opens_once():
    rt = ScriptedRtmidi([["a:midi_out", "synth:midi_in"]])
    port = _port(rt)
    port._open()
    assert rt.opened == [1] and rt.closed == 0 and port.source == "synth:midi_in"


def test_a_listing_that_never_settles_is_refused_in_one_line():
    listings = []
    for k in range(2 * OutputPort.OPEN_TRIES + 2):
        listings.append([f"c{j}:x" for j in range(k % 2)] + ["synth:midi_in"])
    port = _port(ScriptedRtmidi(listings))
    with pytest.raises(PortError, match="kept moving") as e:
        port._open()
    assert "\n" not in str(e.value) and not port.connected
