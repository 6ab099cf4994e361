"""The contract (pydantic, what BentoML validates and the OpenAPI document shows) and
`service.schema` (what names the problem, and what the Lambda handler validates with) accept
exactly the same requests: generated bodies, both ways."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from service.contract import EXAMPLE_BEAT, PredictRequest, PredictResponse
from service.schema import Limits, RequestError, parse_predict_request, predict_response

UNLIMITED = Limits(max_rows=10**6, max_body_bytes=10**9)

samples = st.one_of(
    st.floats(min_value=-10, max_value=10),
    st.floats(allow_nan=True, allow_infinity=True),  # NaN, ±Infinity, 1e300, 1e21, ...
    st.integers(min_value=-(10**7), max_value=10**7),
    st.integers(min_value=10**18, max_value=10**40),
    st.sampled_from([True, False, None, "0.5", [], {}]),
)
beats = st.lists(st.lists(samples, min_size=139, max_size=141) | st.just([0.5] * 140), min_size=0, max_size=3)


def accepted_by_schema(raw: bytes) -> np.ndarray | None:
    try:
        return parse_predict_request(raw, "application/json", UNLIMITED).array
    except RequestError as refused:
        assert 400 <= refused.status < 500
        return None


def accepted_by_contract(raw: bytes) -> np.ndarray | None:
    try:
        return np.asarray(PredictRequest.model_validate_json(raw).beats, dtype=np.float32)
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(beats)
def test_both_accept_the_same_bodies_and_read_the_same_beats(rows):
    raw = json.dumps({"beats": rows}).encode()  # NaN and Infinity as JSON's non-standard tokens
    ours, theirs = accepted_by_schema(raw), accepted_by_contract(raw)
    assert (ours is None) == (theirs is None), (ours, theirs)
    if ours is not None:
        np.testing.assert_array_equal(ours, theirs)


def test_the_example_is_a_valid_request_and_the_answer_matches_the_response_model():
    example = PredictRequest.model_json_schema()["example"]
    assert example == {"beats": [EXAMPLE_BEAT]}
    array = parse_predict_request(json.dumps(example).encode(), "application/json", UNLIMITED).array
    PredictResponse.model_validate(predict_response(np.zeros(len(array)), 0.5, "3"))
