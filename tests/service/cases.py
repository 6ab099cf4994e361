"""Bad requests and the 4xx each must get: one table for every way heartgate serves
(the BentoML service over HTTP, the Lambda handler through API Gateway v2 events)."""

MAX_ROWS, MAX_BODY = 8, 64 * 1024
BEAT = [0.5] * 140

# (body: JSON value or raw bytes, content type, status, text the error message must contain)
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
    # Hostile inputs that once got a 500 (field notes): a 401-digit integer, deep nesting, a
    # sample whose squared error overflows float32, and the seed client's shape gone wrong.
    (b'{"beats": [[' + b"9" * 401 + b", 0.5" * 139 + b"]]}", "application/json", 422, "beat 0 sample 0 is an integer of 401 digits"),
    (b'{"beats": ' + b"[" * 1000 + b"]" * 1000 + b"}", "application/json", 422, "beat 0 has 1 samples; expected 140"),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400, "body is not valid JSON: it is nested too deeply"),
    ({"beats": [[1e21] + BEAT[1:]]}, "application/json", 422, "beat 0 sample 0 is 1e+21, outside ±1e+06"),
    ([BEAT, BEAT[:-2]], "application/json", 422, "beat 1 has 138 samples; expected 140"),
    (b'{"beats": [[0.5' + b", 0.5" * 139 + b"]]}\xff", "application/json", 400, "body is not valid JSON"),
    ({"beats": [[True] + BEAT[1:]]}, "application/json", 422, "beat 0 sample 0 is not a number: True"),
]
