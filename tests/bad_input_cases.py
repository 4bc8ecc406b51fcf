"""The check every bad-input table runs: a case is ``(call, expected)``; ``call(tmp_path)`` runs
the API, ``expected`` is ``(ExceptionType, "message fragment")`` or a function that checks the
returned value."""

import pytest


def check_case(name, call, expected, tmp_path):
    if callable(expected):
        assert expected(call(tmp_path)), name
        return
    error, fragment = expected
    with pytest.raises(error) as caught:
        call(tmp_path)
    assert fragment in str(caught.value), str(caught.value)
