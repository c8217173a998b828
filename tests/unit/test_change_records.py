from cdc_sio.capture import to_change


def test_commit_time_text_becomes_utc_iso_8601_whatever_the_session_time_zone() -> None:
    record = {
        "id": 7,
        "table_name": "public.things",
        "op": "update",
        "data": '{"id": 1}',
        "old": None,
        "routes": ["update"],
        "committed_at": "2026-11-28 07:34:27.5+01",  # PostgreSQL's ISO text in a session at UTC+1
    }

    change = to_change(record)

    assert change.committed_at == "2026-11-28T06:34:27.500000+00:00"  # as datetime.isoformat writes it
    assert change.row == {"id": 1} and change.routes == ("update",)
