"""Bad requests and the 4xx each must get: one table for every way heartgate serves
(the BentoML service over HTTP, the Lambda handler through API Gateway v2 events)."""

MAX_ROWS, MAX_BODY = 8, 64 * 1024
BEAT = [0.5] * 140

# (body: dict or raw bytes, content type, status, text the error message must contain)
BAD_REQUESTS = [
    ({"beats": [[0.5] * 139]}, "application/json", 422, "beat 0 has 139 samples; expected 140"),
    ({"beats": "not a list"}, "application/json", 422, '"beats" must be a list of beats'),
    ({"beats": [BEAT, "beat"]}, "application/json", 422, "beat 1 must be a list of 140 numbers"),
    ({"beats": [BEAT[:-1] + ["x"]]}, "application/json", 422, "beat 0 sample 139 is not a number: 'x'"),
    (b'{"beats": [[NaN' + b", 0.5" * 139 + b"]]}", "application/json", 400, "NaN is not allowed"),
    (b'{"beats": [[Infinity' + b", 0.5" * 139 + b"]]}", "application/json", 400, "Infinity is not allowed"),
    ({"beats": []}, "application/json", 422, '"beats" is empty'),
    ({"beats": [BEAT] * (MAX_ROWS + 1)}, "application/json", 413, f'"beats" has {MAX_ROWS + 1} rows; the limit is {MAX_ROWS}'),
    (b"{" + b" " * MAX_BODY + b"}", "application/json", 413, f"the limit is {MAX_BODY}"),
    ({"beats": [BEAT]}, "text/csv", 415, "content type must be application/json"),
    (b"{not json", "application/json", 400, "body is not valid JSON"),
]
