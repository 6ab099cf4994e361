import json

import numpy as np
import pytest

from service.schema import Limits, RequestError, parse_predict_request, predict_response

LIMITS = Limits(max_rows=4, max_body_bytes=20_000)
JSON = "application/json"


def body(beats) -> bytes:
    return json.dumps({"beats": beats}).encode()


def beat(value=0.5, length=140) -> list:
    return [value] * length


def test_valid_request_becomes_a_float32_batch():
    beats = parse_predict_request(body([beat(0.25), beat(1)]), "application/json; charset=utf-8", LIMITS)
    assert beats.array.shape == (2, 140) and beats.array.dtype == np.float32 and not beats.bare
    assert beats.array[0, 0] == 0.25 and beats.array[1, 139] == 1.0


def test_a_bare_array_is_the_seed_clients_request_and_gets_booleans():
    beats = parse_predict_request(json.dumps([beat(0.25), beat(2)]).encode(), JSON, LIMITS)
    assert beats.bare and beats.array.shape == (2, 140)
    assert predict_response(np.array([0.1, 0.3]), threshold=0.2, model_version="7", bare=True) == [False, True]


def test_a_non_finite_error_is_refused_not_answered():
    with pytest.raises(RequestError, match="beat 1 has no finite reconstruction error") as raised:
        predict_response(np.array([0.1, np.inf]), threshold=0.2, model_version="7")
    assert raised.value.status == 422


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "message"),
    [
        (body([beat()]), "text/plain", 415, "content type must be application/json, got 'text/plain'"),
        (body([beat()]), None, 415, "got 'none'"),
        (b"x" * 20_001, JSON, 413, "body is 20001 bytes; the limit is 20000"),
        (b'{"beats": [[1, 2,', JSON, 400, "body is not valid JSON"),
        (b"\xff\xfe", JSON, 400, "body is not valid JSON"),
        (b'{"beats": [[NaN]]}', JSON, 400, "NaN is not allowed"),
        (b'{"beats": [[Infinity]]}', JSON, 400, "Infinity is not allowed"),
        (b'{"beats": [[-Infinity]]}', JSON, 400, "-Infinity is not allowed"),
        (b"[1, 2]", JSON, 422, "beat 0 must be a list of 140 numbers, got int"),
        (b'"beats"', JSON, 422, 'body must be an object with a "beats" field, or a bare array of beats'),
        (b'{"beat": []}', JSON, 422, 'body must be an object with a "beats" field'),
        (b'{"beats": "0.1,0.2"}', JSON, 422, '"beats" must be a list of beats, got str'),
        (body([]), JSON, 422, '"beats" is empty'),
        (body([beat()] * 5), JSON, 413, '"beats" has 5 rows; the limit is 4'),
        (body([beat(), 7]), JSON, 422, "beat 1 must be a list of 140 numbers, got int"),
        (body([beat(length=139)]), JSON, 422, "beat 0 has 139 samples; expected 140"),
        (body([beat(length=141)]), JSON, 422, "beat 0 has 141 samples; expected 140"),
        (body([beat()[:-1] + ["0.5"]]), JSON, 422, "beat 0 sample 139 is not a number: '0.5'"),
        (body([[True] + beat()[1:]]), JSON, 422, "beat 0 sample 0 is not a number: True"),
        (body([beat()[:3] + [None] + beat()[4:]]), JSON, 422, "beat 0 sample 3 is not a number: None"),
        (b'{"beats": [[1e999' + b", 0" * 139 + b"]]}", JSON, 422, "beat 0 sample 0 is not finite"),
        (body([beat()[:5] + [1e39] + beat()[6:]]), JSON, 422, "beat 0 sample 5 is out of range for float32"),
        (body([beat()[:5] + [-2e6] + beat()[6:]]), JSON, 422, "beat 0 sample 5 is -2e+06, outside ±1e+06"),
        (body([[10**30] + beat()[1:]]), JSON, 422, "beat 0 sample 0 is 1e+30, outside ±1e+06"),
        (b'{"beats": [[' + b"1" * 401 + b"]]}", JSON, 422, "beat 0 has 1 samples"),
        (b"[" * 3000 + b"]" * 3000, JSON, 400, "body is not valid JSON: it is nested too deeply"),
    ],
)
def test_bad_requests_get_a_4xx_that_names_the_problem(raw, content_type, status, message):
    with pytest.raises(RequestError) as raised:
        parse_predict_request(raw, content_type, LIMITS)
    assert raised.value.status == status
    assert message in raised.value.message
    assert 400 <= raised.value.status < 500


def test_response_flags_errors_above_the_threshold():
    response = predict_response(np.array([0.1, 0.3]), threshold=0.2, model_version="7")
    assert response == {
        "predictions": [{"anomaly": False, "error": 0.1}, {"anomaly": True, "error": 0.3}],
        "threshold": 0.2,
        "model_version": "7",
    }


def test_limits_come_from_the_config_variables():
    limits = Limits.from_environ({"HEARTGATE_SERVE__MAX_ROWS": "8", "HEARTGATE_SERVE__MAX_BODY_BYTES": "100"})
    assert limits == Limits(max_rows=8, max_body_bytes=100)
    assert Limits.from_environ({}) == Limits()
