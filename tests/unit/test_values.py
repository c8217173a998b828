"""Values decoded from the change log keep every digit and every byte."""

from __future__ import annotations

from cdc_sio.values import decode_row


def test_numbers_that_javascript_holds_exactly_stay_numbers() -> None:
    row = decode_row('{"a": 1, "b": -9007199254740991, "c": 1.5, "d": 0.1, "e": 1e300}')
    assert row == {"a": 1, "b": -9007199254740991, "c": 1.5, "d": 0.1, "e": 1e300}


def test_numbers_javascript_would_round_travel_as_strings_with_every_digit() -> None:
    row = decode_row('{"big": 9007199254740993, "numeric": 123456789012345678.5, "tiny": 0.1000000000000000055511}')
    assert row == {"big": "9007199254740993", "numeric": "123456789012345678.5", "tiny": "0.1000000000000000055511"}


def test_bytea_columns_become_bytes() -> None:
    row = decode_row('{"blob": "\\\\x0102ff", "text": "\\\\x01"}', binary_columns={"blob"})
    assert row == {"blob": b"\x01\x02\xff", "text": "\\x01"}


def test_integers_inside_json_columns_keep_every_digit_too() -> None:
    text = '{"doc": {"ids": [1, 9007199254740993, {"n": -9007199254740993}]}, "ok": true, "n": 2}'
    row = decode_row(text)
    assert row == {"doc": {"ids": [1, "9007199254740993", {"n": "-9007199254740993"}]}, "ok": True, "n": 2}


def test_excluded_columns_that_the_capture_set_to_null_are_dropped() -> None:
    assert decode_row('{"id":1,"secret":null,"name":"a"}', excluded=("secret", "gone")) == {"id": 1, "name": "a"}
