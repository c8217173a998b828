"""Routing turns a change into emissions; encoding writes the classic adapter's exact bytes."""

from __future__ import annotations

import msgpack
import pytest

from cdc_sio.config import Config, parse_config
from cdc_sio.encoding import classic_channel, classic_message, decode_classic
from cdc_sio.errors import EncodingError
from cdc_sio.routing import Change, Emission, route

# socketio-wire-formats.md §2.5: what @socket.io/redis-emitter 5.1.0 publishes for
# io.to("thing:7").emit("Thing::update", {id: 7, name: "x"}).
WORKED_EXAMPLE = bytes.fromhex(
    "93a7656d697474657283a47479706502a46461746192ad5468696e673a3a75706461746582a2696407a46e616d65"
    "a178a36e7370a12f83a5726f6f6d7391a77468696e673a37a5666c61677380a665786365707490"
)


def config(**table: object) -> Config:
    entry = {
        "table": "public.things",
        "rooms": ["thing:{id}", "org:{org_id}"],
        "events": {"insert": "Thing::create", "update": "Thing::update"},
        **table,
    }
    return parse_config({"postgres": {"dsn": "x"}, "tables": [entry]}, "t.toml", {})


def change(op: str = "update", **row: object) -> Change:
    return Change(7, "public.things", op, {"id": 7, "org_id": 1, **row}, "2026-01-02T03:04:05+00:00")


def test_change_becomes_one_event_to_all_its_rooms_with_metadata() -> None:
    [emission] = route(change(name="x"), config())
    assert emission == Emission(
        "/",
        ("thing:7", "org:1"),
        "Thing::update",
        (
            {"id": 7, "org_id": 1, "name": "x"},
            {"id": 7, "op": "update", "table": "public.things", "committed_at": "2026-01-02T03:04:05+00:00"},
        ),
    )


def test_operation_or_table_not_configured_gives_nothing() -> None:
    assert route(change("delete"), config()) == []
    assert route(Change(1, "public.other", "insert", {}, ""), config()) == []


def test_null_room_column_drops_that_room_and_no_room_left_means_no_event() -> None:
    [emission] = route(change(org_id=None), config())
    assert emission.rooms == ("thing:7",)
    assert route(change(id=None, org_id=None), config()) == []


def test_no_templates_means_the_whole_namespace_and_duplicate_rooms_collapse() -> None:
    [emission] = route(change(), config(rooms=[], namespace="/admin"))
    assert (emission.namespace, emission.rooms) == ("/admin", ())
    [emission] = route(change(), config(rooms=["r:{id}", "r:{id}"]))
    assert emission.rooms == ("r:7",)


def test_worked_example_bytes_and_channel() -> None:
    emission = Emission("/", ("thing:7",), "Thing::update", ({"id": 7, "name": "x"},))
    assert classic_channel("socket.io", emission) == b"socket.io#/#thing:7#"
    assert classic_message(emission) == WORKED_EXAMPLE
    assert len(WORKED_EXAMPLE) == 85


def test_several_or_no_rooms_go_to_the_namespace_channel_as_one_message() -> None:
    several = Emission("/admin", ("a", "b"), "e", (1,))
    assert classic_channel("k", several) == b"k#/admin#"
    everyone = Emission("/", (), "e", ())
    assert classic_channel("socket.io", everyone) == b"socket.io#/#"
    assert classic_message(everyone).endswith(bytes.fromhex("83a5726f6f6d7390a5666c61677380a665786365707490"))


def test_bytes_are_msgpack_bin_so_the_browser_gets_binary() -> None:
    message = classic_message(Emission("/", ("thing:7",), "Thing::update", ({"id": 7, "blob": b"\x01\x02"},)))
    assert bytes.fromhex("a4626c6f62c4020102") in message


def test_except_rooms_and_flags_are_sent_only_when_set() -> None:
    emission = Emission("/", ("a",), "e", (), except_rooms=("b",), volatile=True, compress=False)
    _, _, opts = msgpack.unpackb(classic_message(emission))
    assert opts == {"rooms": ["a"], "flags": {"volatile": True, "compress": False}, "except": ["b"]}


def test_round_trip_through_decoder() -> None:
    emission = Emission("/n", ("a#b", "piñata"), "ev", ({"k": [1, None]}, "s"), except_rooms=("x",), volatile=True)
    assert decode_classic(classic_message(emission)) == emission
    assert msgpack.unpackb(classic_message(emission))[0] == "emitter"


def test_unencodable_value_is_an_encoding_error() -> None:
    with pytest.raises(EncodingError, match="cannot encode"):
        classic_message(Emission("/", (), "e", (object(),)))
