"""Every target turns every operation into the exact Redis commands its servers read (golden bytes from
socketio-wire-formats.md), and refuses what would be lost or would make clients drop the connection."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgpack
import pytest

from cdc_sio.commands import commands
from cdc_sio.emitter import Emitter
from cdc_sio.errors import EncodingError, UnsupportedOperation
from cdc_sio.operations import DisconnectSockets, Operation, ServerSideEmit, SocketsJoin, SocketsLeave
from cdc_sio.routing import Emission
from cdc_sio.targets import PythonSocketIO, RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter, Target, stream_for

THING = Emission("/", ("thing:7",), "Thing::update", ({"id": 7, "name": "x"},))
BLOB = Emission("/", ("thing:7",), "Thing::update", ({"id": 7, "blob": b"\x01\x02"},))
ALL_TARGETS: list[Target] = [RedisAdapter(), ShardedRedisAdapter(), RedisStreamsAdapter(), PythonSocketIO()]

# §3.2: the sharded adapter's ClusterMessage for THING, and for BLOB (msgpack, because of the binary).
SHARDED_JSON = (
    b'{"uid":"emitter","nsp":"/","type":3,"data":{"packet":{"type":2,"data":["Thing::update",{"id":7,"name":"x"}],'
    b'"nsp":"/"},"opts":{"rooms":["thing:7"],"except":[],"flags":{}}}}'
)
SHARDED_MSGPACK = bytes.fromhex(
    "84a3756964a7656d6974746572a36e7370a12fa47479706503a46461746182a67061636b657483a47479706502a46461746192"
    "ad5468696e673a3a75706461746582a2696407a4626c6f62c4020102a36e7370a12fa46f70747383a5726f6f6d7391a77468696e"
    "673a37a665786365707490a5666c61677380"
)
# §4.2: what @socket.io/redis-streams-emitter 0.1.1 writes.
STREAMS_DATA = (
    b'{"packet":{"type":2,"data":["Thing::update",{"id":7,"name":"x"}],"nsp":"/"},'
    b'"opts":{"rooms":["thing:7"],"flags":{},"except":[]}}'
)
STREAMS_BINARY_DATA = (
    b"gqZwYWNrZXSDpHR5cGUCpGRhdGGSrVRoaW5nOjp1cGRhdGWComlkB6RibG9ixAIBAqNuc3ChL6RvcHRzg6Vyb29tc5GndGhpbmc6N6VmbGFnc4Cm"
    b"ZXhjZXB0kA=="
)


def only(target: Target, operation: Operation) -> tuple[Any, ...]:
    [command] = commands(target, operation)
    return command


def test_classic_requests_are_the_official_emitters_json() -> None:
    """§2.3: socketsJoin/socketsLeave/disconnectSockets/serverSideEmit on <key>-request#<nsp>#, as redis-emitter 5.1."""
    channel = b"socket.io-request#/#"
    cases = [
        (
            SocketsJoin("/", ("r1",), (), ("r2", "r3")),
            b'{"type":2,"opts":{"rooms":["r1"],"except":[]},"rooms":["r2","r3"]}',
        ),
        (SocketsLeave("/", ("r1",), (), ("r2",)), b'{"type":3,"opts":{"rooms":["r1"],"except":[]},"rooms":["r2"]}'),
        (DisconnectSockets("/", ("r1",), (), True), b'{"type":4,"opts":{"rooms":["r1"],"except":[]},"close":true}'),
        (ServerSideEmit("/", "hello", (1, "two")), b'{"uid":"emitter","type":6,"data":["hello",1,"two"]}'),
    ]
    for operation, payload in cases:
        assert only(RedisAdapter(), operation) == ("PUBLISH", channel, payload)


def test_classic_server_side_emit_with_binary_is_a_msgpack_request() -> None:
    """The adapter reads a request that does not start with '{' as msgpack, which carries bytes."""
    _, channel, payload = only(RedisAdapter(key="k"), ServerSideEmit("/admin", "hello", (b"\x01",)))
    assert channel == b"k-request#/admin#"
    assert msgpack.unpackb(payload) == {"uid": "emitter", "type": 6, "data": ["hello", b"\x01"]}


def test_sharded_worked_examples_json_and_binary() -> None:
    """SPUBLISH the ClusterMessage with a top-level nsp: JSON text, or msgpack when an argument is binary."""
    assert only(ShardedRedisAdapter(), THING) == ("SPUBLISH", b"socket.io#/#thing:7#", SHARDED_JSON)
    assert len(SHARDED_JSON) == 172
    assert only(ShardedRedisAdapter(), BLOB) == ("SPUBLISH", b"socket.io#/#thing:7#", SHARDED_MSGPACK)


@pytest.mark.parametrize(
    ("mode", "rooms", "channel"),
    [
        ("static", ("thing:7",), b"p#/n#"),
        ("dynamic", ("thing:7",), b"p#/n#thing:7#"),
        ("dynamic", ("a" * 20,), b"p#/n#"),
        ("dynamic-private", ("a" * 20,), b"p#/n#" + b"a" * 20 + b"#"),
        ("dynamic", ("a", "b"), b"p#/n#"),
        ("dynamic", (), b"p#/n#"),
    ],
)
def test_sharded_channel_follows_the_subscription_mode(mode: Any, rooms: tuple[str, ...], channel: bytes) -> None:
    """A one-room broadcast uses the room's channel only where servers subscribe to it (the adapter's rule)."""
    target = ShardedRedisAdapter(channel_prefix="p", subscription_mode=mode)
    assert only(target, Emission("/n", rooms, "e", ()))[1] == channel
    assert only(target, SocketsJoin("/n", rooms, (), ("x",)))[1] == b"p#/n#"


def test_sharded_join_leave_disconnect_and_server_side_emit() -> None:
    """§3.2 "Other types from outside": types 4, 5, 6 and 9 on the namespace channel."""
    target = ShardedRedisAdapter()
    head = '{"uid":"emitter","nsp":"/","type":'
    opts = '{"rooms":[],"except":[],"flags":{}}'
    cases = [
        (SocketsJoin("/", (), (), ("joined",)), f'{head}4,"data":{{"opts":{opts},"rooms":["joined"]}}}}'),
        (SocketsLeave("/", (), (), ("joined",)), f'{head}5,"data":{{"opts":{opts},"rooms":["joined"]}}}}'),
        (DisconnectSockets("/", (), (), False), f'{head}6,"data":{{"opts":{opts},"close":false}}}}'),
        (ServerSideEmit("/", "hello", (1, "two")), f'{head}9,"data":{{"packet":["hello",1,"two"]}}}}'),
    ]
    for operation, payload in cases:
        assert only(target, operation) == ("SPUBLISH", b"socket.io#/#", payload.encode())


def test_streams_worked_example_and_binary() -> None:
    """§4.2: XADD with MAXLEN ~, fields uid/nsp/type/data; binary data is base64 of msgpack."""
    fields = ("uid", "emitter", "nsp", "/", "type", "3", "data")
    assert only(RedisStreamsAdapter(), THING) == (
        "XADD",
        b"socket.io",
        "MAXLEN",
        "~",
        10000,
        "*",
        *fields,
        STREAMS_DATA,
    )
    assert only(RedisStreamsAdapter(maxlen=50), BLOB)[4] == 50
    assert only(RedisStreamsAdapter(), BLOB)[-1] == STREAMS_BINARY_DATA


def test_streams_join_leave_disconnect_and_server_side_emit_types() -> None:
    """socketsJoin/Leave/disconnectSockets are types 4/5/6 and serverSideEmit type 9, as the streams emitter writes."""
    target = RedisStreamsAdapter()
    selection = {"rooms": ["r1"], "except": ["r2"], "flags": {}}
    cases = [
        (SocketsJoin("/", ("r1",), ("r2",), ("j",)), "4", {"opts": selection, "rooms": ["j"]}),
        (SocketsLeave("/", ("r1",), ("r2",), ("j",)), "5", {"opts": selection, "rooms": ["j"]}),
        (DisconnectSockets("/", ("r1",), ("r2",), True), "6", {"opts": selection, "close": True}),
        (ServerSideEmit("/", "hello", (1,)), "9", {"packet": ["hello", 1]}),
    ]
    for operation, message_type, data in cases:
        command = only(target, operation)
        assert command[11] == message_type
        assert json.loads(command[-1]) == data


@pytest.mark.parametrize(
    ("namespace", "stream"), [("/", "socket.io-3"), ("/admin", "socket.io-0"), ("/chat", "socket.io-3")]
)
def test_streams_with_several_streams_name_them_like_the_adapter(namespace: str, stream: str) -> None:
    """streamName-<Java hashCode(nsp) % streamCount>, with JavaScript's 32-bit overflow (§4.1 examples)."""
    target = RedisStreamsAdapter(stream_count=4)
    assert stream_for(target, namespace) == stream
    assert only(target, Emission(namespace, (), "e", ()))[1] == stream.encode()


def test_streams_namespace_the_adapter_never_reads_is_refused() -> None:
    """'/notifications' hashes negative: the adapter would write 'socket.io--3' and no server reads it."""
    with pytest.raises(EncodingError, match=r"'socket\.io--3'"):
        commands(RedisStreamsAdapter(stream_count=4), Emission("/notifications", (), "e", ()))
    assert only(RedisStreamsAdapter(), Emission("/notifications", (), "e", ()))[1] == b"socket.io"


def test_python_socketio_emit_is_what_its_own_manager_publishes() -> None:
    """§6: the emit message of AsyncRedisManager 5.18, with data as the list of arguments."""
    _, channel, payload = only(PythonSocketIO(), THING)
    assert channel == b"socketio"
    assert payload == (
        b'{"method": "emit", "event": "Thing::update", "data": [{"id": 7, "name": "x"}], "binary": false, '
        b'"namespace": "/", "room": "thing:7", "skip_sid": null, "callback": null, "host_id": "emitter"}'
    )


def test_python_socketio_binary_rooms_skip_sid_and_list_arguments() -> None:
    """Binary travels as placeholders plus base64; rooms as a list or null; a list argument stays one argument."""
    message = json.loads(only(PythonSocketIO(channel="c"), BLOB)[2])
    assert (message["data"], message["binary"]) == (
        [[{"id": 7, "blob": {"_placeholder": True, "num": 0}}], "AQI="],
        True,
    )
    message = json.loads(
        only(PythonSocketIO(), Emission("/a", ("r1", "r2"), "e", ([1, 2], "x"), except_rooms=("s",)))[2]
    )
    assert (message["room"], message["skip_sid"], message["data"]) == (["r1", "r2"], ["s"], [[1, 2], "x"])
    assert json.loads(only(PythonSocketIO(), Emission("/", (), "e", ()))[2])["room"] is None


def test_python_socketio_addresses_join_leave_and_disconnect_to_session_ids() -> None:
    """enter_room/leave_room/disconnect take one sid each: one message per sid and room."""
    target = PythonSocketIO()
    joins = [json.loads(c[2]) for c in commands(target, SocketsJoin("/", ("s1", "s2"), (), ("r",)))]
    assert joins == [
        {"method": "enter_room", "sid": sid, "room": "r", "namespace": "/", "host_id": "emitter"}
        for sid in ("s1", "s2")
    ]
    [leave] = commands(target, SocketsLeave("/", ("s1",), (), ("r",)))
    assert json.loads(leave[2])["method"] == "leave_room"
    [disconnect] = commands(target, DisconnectSockets("/", ("s1",), (), False))
    assert json.loads(disconnect[2]) == {"method": "disconnect", "sid": "s1", "namespace": "/", "host_id": "emitter"}


@pytest.mark.parametrize(
    "operation",
    [
        SocketsJoin("/", (), (), ("r",)),
        SocketsLeave("/", ("s1",), ("s2",), ("r",)),
        DisconnectSockets("/", ("s1",), (), True),
        ServerSideEmit("/", "hello", ()),
    ],
)
def test_python_socketio_refuses_what_its_protocol_cannot_say(operation: Operation) -> None:
    """No room-wide join/leave/disconnect, no except, no closing the connection, no server-side events."""
    with pytest.raises(UnsupportedOperation):
        commands(PythonSocketIO(), operation)


REFUSED: list[tuple[Operation, str]] = [
    (Emission("/", (), "disconnect", ()), "reserved"),
    (Emission("/", (), "connect_error", ()), "reserved"),
    (Emission("/", (), "", ()), "empty"),
    (Emission("/", (), 7, ()), "must be a string"),
    (Emission("admin", (), "e", ()), "must be a string that starts with '/'"),
    (Emission("/", ("",), "e", ()), "room '' must be a non-empty string"),
    (Emission("/", ("a\udc80",), "e", ()), "must be a non-empty string"),
    (Emission("/", (), "e", (), except_rooms=(None,)), "except-room None"),
    (Emission("/", (), "e", (object(),)), "cannot encode"),
    (SocketsJoin("/", ("s",), (), ("",)), "room to join"),
    (ServerSideEmit("/", "connection", ()), "reserved"),
    (ServerSideEmit("/", "error", ()), "reserved"),
]


@pytest.mark.parametrize("target", ALL_TARGETS, ids=type)
@pytest.mark.parametrize(("operation", "problem"), REFUSED)
def test_every_target_refuses_input_that_would_be_lost_or_drop_clients(
    target: Target, operation: Operation, problem: str
) -> None:
    """Reserved names, empty or non-text names, and unencodable values fail before anything is published."""
    with pytest.raises(EncodingError, match=problem):
        commands(target, operation)


def test_nan_is_refused_where_it_would_reach_a_browser_as_invalid_json() -> None:
    """python-socketio would forward NaN into the browser's JSON; the Node adapters carry it as msgpack (null)."""
    nan = Emission("/", (), "e", (float("nan"),))
    with pytest.raises(EncodingError, match="cannot encode"):
        commands(PythonSocketIO(), nan)
    _, _, payload = only(ShardedRedisAdapter(), nan)
    assert payload[:1] != b"{" and msgpack.unpackb(payload)["data"]["packet"]["data"][0] == "e"


def test_an_emitter_encodes_each_emission_like_the_first_of_its_kind() -> None:
    """The emitter prepares an encoder per namespace, event, except-rooms and flags: nothing of one emission may
    stay in it for the next (rooms, arguments, binary, the channel of one room)."""
    emissions = [
        THING,
        BLOB,
        THING._replace(rooms=("thing:8", "org:1"), args=({"id": 8}, {"meta": [1, 2]})),
        THING._replace(rooms=()),
        THING._replace(rooms=("a" * 20,)),
        THING,
        Emission("/admin", ("r",), "e", (1,), except_rooms=("x",), volatile=True, compress=False),
        Emission("/admin", ("s", "t"), "e", (b"\x00", 2.5), except_rooms=("x",), volatile=True, compress=False),
        Emission("/admin", ("s",), "e", (), except_rooms=("x",), volatile=True, compress=True),
    ]
    batch = Emitter(None, ALL_TARGETS).batch()  # type: ignore[arg-type]  # encoding needs no Redis
    for emission in emissions:
        expected = tuple((0, command) for target in ALL_TARGETS for command in commands(target, emission))
        assert batch.encode(emission).commands == expected


@pytest.mark.parametrize(("operation", "problem"), REFUSED)
def test_an_emitter_refuses_the_same_input_before_and_after_its_kind_was_seen(
    operation: Operation, problem: str
) -> None:
    batch = Emitter(None, ALL_TARGETS).batch()  # type: ignore[arg-type]
    if isinstance(operation, Emission):
        with contextlib.suppress(EncodingError):
            batch.encode(operation._replace(rooms=("ok",), args=()))  # the kind is prepared, if it can be
    for _ in range(2):
        with pytest.raises(EncodingError, match=problem):
            batch.encode(operation)


def test_an_emitter_refuses_rooms_that_are_not_names_even_unhashable_ones() -> None:
    batch = Emitter(None, ALL_TARGETS).batch()  # type: ignore[arg-type]
    with pytest.raises(EncodingError, match=r"except-room \['x'\] must be a non-empty string"):
        batch.encode(Emission("/", (), "e", (), except_rooms=(["x"],)))  # type: ignore[arg-type]
