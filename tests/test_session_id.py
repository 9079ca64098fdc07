"""SessionId: every spelling of one session parses to one normal form; garbage is refused."""

from __future__ import annotations

import datetime
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecephys import SessionId
from ecephys.errors import SessionIdError

subjects = st.integers(min_value=100_000, max_value=9_999_999).map(str)
dates = st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2099, 12, 31))
indices = st.integers(min_value=0, max_value=99)
prefixes = st.sampled_from(["", "DRpilot_", "DynamicRouting1_", "1234567890_", "ecephys "])
times_of_day = st.sampled_from(["", "_101203", "_10-12-03", "_10:12:03", "T235959"])


@st.composite
def spellings(draw) -> tuple[str, str, datetime.date, int]:
    """(a spelling of an id, its subject, date and idx), built independently of the parser."""
    subject, date, idx = draw(subjects), draw(dates), draw(indices)
    date_text = date.strftime(draw(st.sampled_from(["%Y-%m-%d", "%Y%m%d"])))
    idx_text = f"_{idx}" if idx else draw(st.sampled_from(["", "_0"]))
    name = f"{draw(prefixes)}{subject}_{date_text}{draw(times_of_day)}{idx_text}"
    wrap = draw(
        st.sampled_from(["{}", "/data/{}/session.nwb", "s3://bucket/{}/", "{}.nwb", "C:\\nwb\\{}.nwb"])
    )
    return wrap.format(name), subject, date, idx


@given(spellings())
def test_every_spelling_parses_to_the_normal_form(case):
    text, subject, date, idx = case
    expected = f"{subject}_{date:%Y-%m-%d}" + (f"_{idx}" if idx else "")
    session_id = SessionId(text)
    assert session_id == expected
    assert str(session_id) == expected
    assert (session_id.subject, session_id.date, session_id.idx) == (subject, date, idx)
    assert session_id.ecephys_session_id is None
    assert SessionId(session_id) is session_id
    assert SessionId(str(session_id)) == session_id
    assert hash(session_id) == hash(expected)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-./ ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
def test_text_without_digits_is_refused(text):
    with pytest.raises(SessionIdError, match="is not a session id"):
        SessionId(text)


@given(st.integers(min_value=-(10**6), max_value=10**8 - 1))
def test_small_numbers_are_refused(number):
    with pytest.raises(SessionIdError, match="Allen session id of 9\\+ digits"):
        SessionId(number)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("12345_2023-08-31", "is not a session id"),  # 5-digit subject
        ("12345678_2023-08-31", "is not a session id"),  # 8-digit subject
        ("668755_2023-13-01", "no valid date"),
        ("668755_2023-02-30", "no valid date"),
        ("668755_2023-0831", "is not a session id"),  # mixed date separators
        ("668755", "is not a session id"),  # a subject alone
        ("probe_A_lfp.nwb", "is not a session id"),
        ("", "is not a session id"),
        (1.5, "float"),
        (True, "bool"),
        (None, "NoneType"),
    ],
)
def test_garbage_is_refused_naming_the_text(text, match):
    with pytest.raises(SessionIdError, match=match) as info:
        SessionId(text)
    assert isinstance(info.value, ValueError)
    assert str(text) in info.value.text or repr(text) == info.value.text


@pytest.mark.parametrize(
    "value", [715093703, "715093703", "session_715093703.nwb", Path("c/session_715093703")]
)
def test_allen_ids_have_no_subject_or_date(value):
    session_id = SessionId(value)
    assert session_id == "715093703"
    assert session_id.ecephys_session_id == 715093703
    assert (session_id.subject, session_id.date, session_id.idx) == (None, None, 0)
    assert int(session_id) == 715093703


def test_the_last_path_part_with_an_id_wins():
    assert SessionId("/x/DRpilot_668755_20230831/626791_2022-08-15_1.nwb") == "626791_2022-08-15_1"
    assert SessionId("/cache/session_715093703/probe_810755797_lfp.nwb") == "715093703"


def test_ids_sort_by_subject_number_date_and_idx():
    ids = [
        SessionId("1000000_2022-01-01"),
        SessionId("999999_2023-01-01"),
        SessionId("999999_2022-01-01_1"),
        SessionId("999999_2022-01-01"),
        SessionId(715093703),
    ]
    assert [str(i) for i in sorted(ids)] == [
        "715093703",
        "999999_2022-01-01",
        "999999_2022-01-01_1",
        "999999_2023-01-01",
        "1000000_2022-01-01",
    ]
    assert SessionId("999999_2022-01-01") < "DRpilot_999999_20220102"


def test_equality_sets_and_pickling_use_the_normal_form():
    a, b = SessionId("DRpilot_668755_20230831"), SessionId("668755_2023-08-31_0")
    assert a == b == "668755_2023-08-31"
    assert len({a, b, "668755_2023-08-31"}) == 1
    assert a != SessionId("668755_2023-08-31_1")
    restored = pickle.loads(pickle.dumps(SessionId("668755_2023-08-31_2")))
    assert (restored, restored.idx, restored.date) == ("668755_2023-08-31_2", 2, datetime.date(2023, 8, 31))
    assert repr(a) == "SessionId('668755_2023-08-31')"
