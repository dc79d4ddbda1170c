"""Functions shipped by value keep their file name and lines, whatever cloudpickle release is installed."""

from __future__ import annotations

import traceback

import pytest

from scaler.utility import serialization as ser

SOURCE = """
def outer(x):
    def inner():
        raise ValueError(f"bad {x}")
    return inner()
"""


def test_a_function_shipped_by_value_keeps_its_file_and_lines() -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(SOURCE, "/home/user/my_script.py", "exec"), namespace)
    frames = ser.dumps(namespace["outer"])
    assert b"my_script.py" in bytes(frames[0])
    shipped = ser.loads(frames)
    with pytest.raises(ValueError) as info:
        shipped(3)
    places = [(frame.filename, frame.lineno, frame.name) for frame in traceback.extract_tb(info.value.__traceback__)]
    assert places[-2:] == [("/home/user/my_script.py", 5, "outer"), ("/home/user/my_script.py", 4, "inner")]
