"""Routing turns a change into emissions; encoding writes the classic adapter's exact bytes."""

from __future__ import annotations

import msgpack
import pytest

from cdc_sio.config import Config, parse_config
from cdc_sio.encoding import decode_classic
from cdc_sio.errors import EncodingError
from cdc_sio.routing import Change, Emission, route, too_large
from tests.support import classic_channel, classic_message

# socketio-wire-formats.md §2.5: what @socket.io/redis-emitter 5.1.0 publishes for
# io.to("thing:7").emit("Thing::update", {id: 7, name: "x"}).
WORKED_EXAMPLE = bytes.fromhex(
    "93a7656d697474657283a47479706502a46461746192ad5468696e673a3a75706461746582a2696407a46e616d65"
    "a178a36e7370a12f83a5726f6f6d7391a77468696e673a37a5666c61677380a665786365707490"
)


KEYS = {"public.things": ("id",)}
META = {"id": 7, "op": "update", "table": "public.things", "committed_at": "2026-01-02T03:04:05+00:00"}


def config(**table: object) -> Config:
    entry = {
        "table": "public.things",
        "rooms": ["thing:{id}", "org:{org_id}"],
        "events": {"insert": "Thing::create", "update": "Thing::update", "delete": "Thing::delete"},
        **table,
    }
    return parse_config({"postgres": {"dsn": "x"}, "tables": [entry]}, "t.toml", {})


def change(
    op: str = "update", old: dict[str, object] | None = None, routes: tuple[str, ...] | None = None, **row: object
) -> Change:
    return Change(
        7, "public.things", op, {"id": 7, "org_id": 1, **row}, "2026-01-02T03:04:05+00:00", old=old, routes=routes
    )


def test_change_becomes_one_event_to_all_its_rooms_with_metadata() -> None:
    [emission] = route(change(name="x"), config(), KEYS)
    assert emission == Emission("/", ("thing:7", "org:1"), "Thing::update", ({"id": 7, "org_id": 1, "name": "x"}, META))


def test_operation_or_table_not_configured_gives_nothing() -> None:
    assert route(change("delete"), config(events={"update": "u"}), KEYS) == []
    assert route(Change(1, "public.other", "insert", {}, ""), config(), KEYS) == []


def test_null_room_column_drops_that_room_and_no_room_left_means_no_event() -> None:
    [emission] = route(change(org_id=None), config(), KEYS)
    assert emission.rooms == ("thing:7",)
    assert route(change(id=None, org_id=None), config(), KEYS) == []


def test_no_templates_means_the_whole_namespace_and_duplicate_rooms_collapse() -> None:
    [emission] = route(change(), config(rooms=[], namespace="/admin"), KEYS)
    assert (emission.namespace, emission.rooms) == ("/admin", ())
    [emission] = route(change(), config(rooms=["r:{id}", "r:{id}"]), KEYS)
    assert emission.rooms == ("r:7",)


def test_only_the_routes_the_trigger_matched_are_emitted() -> None:
    important = {
        "on": ["delete"],
        "when": "importance > 100",
        "event": "Thing::delete::important",
        "rooms": ["ROOM::ExtraImportantUpdates"],
        "name": "important",
    }
    cfg = config(routes=[important])
    events = [e.event for e in route(change("delete", routes=("delete", "important")), cfg, KEYS)]
    assert events == ["Thing::delete", "Thing::delete::important"]
    [plain] = route(change("delete", routes=("delete",)), cfg, KEYS)
    assert plain.event == "Thing::delete"
    assert len(route(change("delete", routes=None), cfg, KEYS)) == 2  # logged before routes were recorded


def test_event_templates_use_row_values_table_and_operation() -> None:
    cfg = config(events={}, routes=[{"on": ["update"], "event": "{$table}:{$op}:{kind}"}])
    [emission] = route(change(kind="gadget"), cfg, KEYS)
    assert emission.event == "public.things:update:gadget"


def test_an_update_that_moves_the_row_tells_the_rooms_it_left() -> None:
    old = {"id": 7, "org_id": 1, "name": "x"}
    moved = change(old=old, org_id=2, name="x")
    stays, left = route(moved, config(), KEYS)
    assert (stays.rooms, stays.event) == (("thing:7", "org:2"), "Thing::update")
    assert (left.rooms, left.event, left.args) == (("org:1",), "Thing::delete", (old, {**META, "left": True}))
    [_, left_flag] = route(moved, config(payload="flag", events={"update": "u"}), KEYS)
    assert (left_flag.event, left_flag.args[0]) == ("u::left", {"id": 7})


@pytest.mark.parametrize(
    ("payload", "op", "expected"),
    [
        ("row", "update", {"id": 7, "org_id": 1, "name": "new", "n": 1}),
        ("changes", "update", {"id": 7, "name": "new"}),
        ("changes", "insert", {"id": 7, "org_id": 1, "name": "new", "n": 1}),
        ("changes", "delete", {"id": 7}),
        ("flag", "update", {"id": 7}),
        ("json-string", "update", '{"id":7,"org_id":1,"name":"new","n":1}'),
    ],
)
def test_payload_strategies(payload: str, op: str, expected: object) -> None:
    old = {"id": 7, "org_id": 1, "name": "old", "n": 1} if op == "update" else None
    [emission] = route(change(op, old=old, name="new", n=1), config(payload=payload), KEYS)
    assert emission.args[0] == expected


def test_include_old_adds_the_old_values_to_the_metadata() -> None:
    old = {"id": 7, "org_id": 1, "name": "old"}
    [row] = route(change(old=old, name="new"), config(include_old=True), KEYS)
    assert row.args[1]["old"] == old
    [changes] = route(change(old=old, name="new"), config(include_old=True, payload="changes"), KEYS)
    assert changes.args == ({"id": 7, "name": "new"}, {**META, "old": {"name": "old"}})
    [without] = route(change(old=old, name="new"), config(payload="changes"), KEYS)
    assert "old" not in without.args[1]


def test_except_rooms_are_rendered_from_the_row() -> None:
    [emission] = route(change(), config(except_rooms=["muted:{org_id}"]), KEYS)
    assert emission.except_rooms == ("muted:1",)


def test_truncate_goes_to_the_rooms_that_do_not_depend_on_row_values() -> None:
    cfg = config(rooms=["thing:{id}", "things"], events={"truncate": "Thing::truncate"})
    [emission] = route(Change(9, "public.things", "truncate", {}, "t"), cfg, KEYS)
    assert (emission.rooms, emission.event, emission.args[0]) == (("things",), "Thing::truncate", {})


def test_a_too_large_event_becomes_a_marker_with_the_key() -> None:
    [emission] = route(change(name="x" * 100), config(), KEYS)
    marker = too_large(emission, change(name="x" * 100), ("id",), 12345)
    assert marker.args == ({"id": 7}, {**META, "too_large": True, "bytes": 12345})
    assert marker.rooms == emission.rooms


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
