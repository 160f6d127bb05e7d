"""CMCD (CTA-5004) -> PlaybackQos (schemas.cmcd). No services needed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from schemas.cmcd import (
    CmcdError,
    cmcd_from_headers,
    cmcd_from_query,
    cmcd_to_event,
    parse_cmcd,
)
from schemas.events import Client, PlaybackQos

SID = "6e2fb550-c457-11e9-bb97-0800200c9a66"
QUERY = (
    'br=3200,bs,cid="course-data-101/video-1",mtp=25400,ot=v,sf=d,'
    f'sid="{SID}",su,com.learnstream-learner="learner-42"'
)
CLIENT = Client(platform="web", app_version="3.14.0", device="Chrome 131", network_type="wifi")
AT = datetime(2026, 11, 28, 10, 13, 2, tzinfo=UTC)


def test_cmcd_query_string_form_parses_types() -> None:
    assert parse_cmcd(QUERY) == {
        "br": 3200,
        "bs": True,
        "cid": "course-data-101/video-1",
        "mtp": 25400,
        "ot": "v",
        "sf": "d",
        "sid": SID,
        "su": True,
        "com.learnstream-learner": "learner-42",
    }


def test_cmcd_query_string_form_maps_to_playback_qos() -> None:
    event = cmcd_to_event(parse_cmcd(QUERY), CLIENT, AT)
    assert isinstance(event, PlaybackQos)
    assert event.report == "cmcd"
    assert event.learner_id == "learner-42"
    assert event.course_id == "course-data-101"
    assert event.video_id == "video-1"
    assert event.playback_id == SID
    assert event.session_id == SID
    assert event.avg_bitrate_kbps == 3200
    assert event.peak_bitrate_kbps is None
    assert event.throughput_kbps == 25400
    assert event.rebuffer_count == 1
    assert event.client == CLIENT
    assert event.occurred_at == AT
    assert event.cmcd == parse_cmcd(QUERY)
    assert event.cmcd is not None and event.cmcd["su"] is True


def test_cmcd_from_raw_query_string() -> None:
    raw = "seg=5&CMCD=" + quote(QUERY, safe="")
    assert cmcd_from_query(raw) == parse_cmcd(QUERY)
    assert cmcd_from_query("seg=5") == {}


def test_cmcd_four_header_form_is_merged() -> None:
    headers = {
        "cmcd-request": "bl=21300,dl=18500,mtp=48100,su",
        "CMCD-Object": "br=3200,d=4004,ot=v,tb=6000",
        "Cmcd-Status": "bs,rtp=15000",
        "CMCD-Session": f'cid="course-data-101/video-1",sf=d,sid="{SID}",st=v,'
        'com.learnstream-learner="learner-42"',
        "User-Agent": "player/1.0",
        "X-Other": "br=1",
    }
    merged = cmcd_from_headers(headers)
    assert merged == {
        "bl": 21300,
        "dl": 18500,
        "mtp": 48100,
        "su": True,
        "br": 3200,
        "d": 4004,
        "ot": "v",
        "tb": 6000,
        "bs": True,
        "rtp": 15000,
        "cid": "course-data-101/video-1",
        "sf": "d",
        "sid": SID,
        "st": "v",
        "com.learnstream-learner": "learner-42",
    }
    event = cmcd_to_event(merged, CLIENT, AT)
    assert (event.avg_bitrate_kbps, event.peak_bitrate_kbps, event.throughput_kbps) == (
        3200,
        6000,
        48100,
    )


def test_cmcd_header_error_names_the_header() -> None:
    with pytest.raises(CmcdError, match=r"header CMCD-Object: .*unterminated"):
        cmcd_from_headers({"CMCD-Object": 'br=3200,ot="v'})


def test_cmcd_quoted_strings_with_escapes_and_commas() -> None:
    parsed = parse_cmcd(r'cid="a,b \"quoted\" c\\d",nor="../seg 2.m4s",sid="x"')
    assert parsed == {"cid": 'a,b "quoted" c\\d', "nor": "../seg 2.m4s", "sid": "x"}


def test_cmcd_boolean_keys_and_sf_booleans() -> None:
    assert parse_cmcd("bs,su") == {"bs": True, "su": True}
    assert parse_cmcd("bs=?0,su=?1") == {"bs": False, "su": True}
    base = f'sid="{SID}",cid="c/v",com.learnstream-learner="l"'
    assert cmcd_to_event(parse_cmcd(base + ",bs=?0"), CLIENT, AT).rebuffer_count == 0
    assert cmcd_to_event(parse_cmcd(base), CLIENT, AT).rebuffer_count == 0


def test_cmcd_tokens_numbers_and_whitespace() -> None:
    assert parse_cmcd(" ot=v, sf=d ,st=l, pr=1.25,rtp=-3 ") == {
        "ot": "v",
        "sf": "d",
        "st": "l",
        "pr": 1.25,
        "rtp": -3,
    }
    assert isinstance(parse_cmcd("pr=1.25")["pr"], float)
    assert isinstance(parse_cmcd("br=3200")["br"], int)
    assert parse_cmcd("") == {}


def test_cmcd_unknown_and_custom_keys_are_kept() -> None:
    text = QUERY + ',com.example-myNumericKey=500,xyz="future",nrr="0-99",v=2'
    event = cmcd_to_event(parse_cmcd(text), CLIENT, AT)
    assert event.cmcd is not None
    assert event.cmcd["com.example-myNumericKey"] == 500
    assert event.cmcd["xyz"] == "future"
    assert event.cmcd["nrr"] == "0-99"
    assert event.cmcd["v"] == 2
    assert event.cmcd["com.learnstream-learner"] == "learner-42"


def test_cmcd_course_and_video_split_from_cid() -> None:
    base = f'sid="{SID}",com.learnstream-learner="l",'
    event = cmcd_to_event(parse_cmcd(base + 'cid="org/course-7/video-9"'), CLIENT, AT)
    assert (event.course_id, event.video_id) == ("org/course-7", "video-9")
    event = cmcd_to_event(
        parse_cmcd(base + 'cid="video-9",com.learnstream-course="course-7"'), CLIENT, AT
    )
    assert (event.course_id, event.video_id) == ("course-7", "video-9")


def test_cmcd_custom_keys_supply_ids_session_and_network() -> None:
    text = (
        f'sid="{SID}",cid="c1/v1",com.learnstream-learner="l1",com.learnstream-course="c2",'
        'com.learnstream-video="v2",com.learnstream-session="s2",com.learnstream-net="5g_sa"'
    )
    event = cmcd_to_event(parse_cmcd(text), CLIENT, AT)
    assert (event.learner_id, event.course_id, event.video_id, event.session_id) == (
        "l1",
        "c2",
        "v2",
        "s2",
    )
    assert event.client.network_type == "5g_sa"
    assert event.client.device == "Chrome 131"


def test_cmcd_overrides_win() -> None:
    overrides = {
        "learner_id": "learner-override",
        "course_id": "course-override",
        "video_id": "video-override",
        "session_id": "session-override",
        "CMCD": "ignored",
    }
    event = cmcd_to_event(parse_cmcd(QUERY), CLIENT, AT, overrides=overrides)
    assert (event.learner_id, event.course_id, event.video_id, event.session_id) == (
        "learner-override",
        "course-override",
        "video-override",
        "session-override",
    )
    assert event.playback_id == SID


def test_cmcd_missing_learner_names_how_to_fix() -> None:
    cmcd = parse_cmcd(f'sid="{SID}",cid="c/v"')
    with pytest.raises(CmcdError, match=r"com\.learnstream-learner.*learner_id query parameter"):
        cmcd_to_event(cmcd, CLIENT, AT)
    event = cmcd_to_event(cmcd, CLIENT, AT, overrides={"learner_id": "l"})
    assert event.learner_id == "l"


def test_cmcd_missing_course_and_video_and_sid_are_errors() -> None:
    with pytest.raises(CmcdError, match=r"course id is missing.*course_id query parameter"):
        cmcd_to_event(parse_cmcd(f'sid="{SID}",cid="v",com.learnstream-learner="l"'), CLIENT, AT)
    with pytest.raises(CmcdError, match=r"video id is missing"):
        cmcd_to_event(
            parse_cmcd(f'sid="{SID}",com.learnstream-learner="l",com.learnstream-course="c"'),
            CLIENT,
            AT,
        )
    with pytest.raises(CmcdError, match=r"'sid'"):
        cmcd_to_event(parse_cmcd('cid="c/v",com.learnstream-learner="l"'), CLIENT, AT)


def test_cmcd_top_bitrate_below_br_is_not_a_peak() -> None:
    base = f'sid="{SID}",cid="c/v",com.learnstream-learner="l"'
    assert (
        cmcd_to_event(parse_cmcd(base + ",br=3200,tb=1000"), CLIENT, AT).peak_bitrate_kbps is None
    )
    assert cmcd_to_event(parse_cmcd(base + ",tb=1000"), CLIENT, AT).peak_bitrate_kbps == 1000


def test_cmcd_wrong_type_for_known_key_is_an_error() -> None:
    base = f'sid="{SID}",cid="c/v",com.learnstream-learner="l"'
    with pytest.raises(CmcdError, match=r"'br' must be a number"):
        cmcd_to_event(parse_cmcd(base + ',br="fast"'), CLIENT, AT)


def test_cmcd_bad_network_type_propagates_validation_error() -> None:
    base = f'sid="{SID}",cid="c/v",com.learnstream-learner="l"'
    with pytest.raises(ValidationError, match="network_type"):
        cmcd_to_event(parse_cmcd(base + ',com.learnstream-net="6g"'), CLIENT, AT)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('br=3200,cid="course-data-101', "unterminated quoted string for key 'cid'"),
        (r'cid="a\nb"', "bad escape"),
        ("br=3200,", "trailing ','"),
        ("br=3200,,bs", "expected a key at position 8"),
        ("=3", "expected a key at position 0"),
        ("br=", "has '=' but no value"),
        ("br=32a0", "not a number, token or quoted string"),
        ("bs=?2", "bad boolean"),
        ('cid="x"y', "expected ','"),
        ("br=1 bs", "expected ','"),
        ("com.learnstream-net=5g_sa", "strings must be double-quoted"),
    ],
)
def test_cmcd_malformed_payload_is_a_cmcd_error(text: str, message: str) -> None:
    with pytest.raises(CmcdError) as info:
        parse_cmcd(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_cmcd_event_id_is_deterministic() -> None:
    first = cmcd_to_event(parse_cmcd(QUERY), CLIENT, AT)
    reordered = dict(reversed(list(parse_cmcd(QUERY).items())))
    same_instant = AT.astimezone(timezone(timedelta(hours=2)))
    assert cmcd_to_event(reordered, CLIENT, same_instant).event_id == first.event_id
    assert first.event_id.version == 5
    later = cmcd_to_event(parse_cmcd(QUERY), CLIENT, AT + timedelta(seconds=1))
    assert later.event_id != first.event_id
    changed = cmcd_to_event(parse_cmcd(QUERY.replace("br=3200", "br=3300")), CLIENT, AT)
    assert changed.event_id != first.event_id
    given = uuid.UUID("0b7f3c1e-6a1d-4d8e-9a57-2f1c3e4d5a03")
    assert cmcd_to_event(parse_cmcd(QUERY), CLIENT, AT, event_id=given).event_id == given


def test_cmcd_naive_occurred_at_is_an_error() -> None:
    with pytest.raises(CmcdError, match="timezone-aware"):
        cmcd_to_event(parse_cmcd(QUERY), CLIENT, datetime(2026, 11, 28, 10, 0))
