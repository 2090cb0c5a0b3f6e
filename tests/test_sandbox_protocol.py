"""The sandbox wire protocol: round trips, column tables, and refusal of forged or malformed messages."""
from __future__ import annotations

import os

import numpy as np
import pytest

from sandbox import protocol



# ---------------------------------------------------------------- protocol

def test_protocol_round_trip_and_refusals():
    value = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": (1, 2), 3: np.int64(7), "s": "x"}
    back = protocol.decode(protocol.encode(value))
    assert back["a"].dtype == np.float32 and back["a"].shape == (2, 3) and back["a"].flags.writeable
    assert np.array_equal(back["a"], value["a"]) and back["b"] == [1, 2] and back[3] == 7
    assert np.array_equal(protocol.decode(protocol.encode(np.arange(10)[::3])), [0, 3, 6, 9])
    with pytest.raises(TypeError):
        protocol.encode(np.array([object()], dtype=object))
    with pytest.raises(TypeError):
        protocol.encode({1, 2})
    import msgpack
    forged = msgpack.ExtType(protocol.NDARRAY_EXT, msgpack.packb(["|O", [1], b"\0" * 8]))
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(msgpack.packb(forged))
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(b"\xc1garbage")
    r, w = os.pipe()
    os.write(w, protocol.HEADER.pack(1 << 30))
    with pytest.raises(protocol.ProtocolError, match="exceeds"):
        protocol.FrameReader(r, 1 << 20).read()
    os.close(r)
    os.close(w)


def test_columns_arrive_as_a_dict_of_writable_arrays_and_forgeries_are_refused():
    import msgpack
    table = protocol.Columns({"id": np.arange(4), "age_s": np.linspace(0, 1, 4), "flag": np.zeros(4, np.int8)})
    back = protocol.decode(protocol.encode({"waiting": table, "empty": protocol.Columns({})}))
    assert set(back["waiting"]) == {"id", "age_s", "flag"} and back["empty"] == {}
    assert np.array_equal(back["waiting"]["age_s"], np.linspace(0, 1, 4)) and back["waiting"]["id"].dtype == np.int64
    back["waiting"]["id"][0] = 9   # the candidate may scribble on its copy
    assert back["waiting"]["id"][0] == 9 and table.arrays["id"][0] == 0
    with pytest.raises(ValueError):
        protocol.Columns({"a": np.arange(3), "b": np.arange(4)})
    for body in (["id"], [["id"], ["|O"], 1, b"\0" * 8], [["id"], ["<i8"], 2, b"\0" * 8],
                 [["id", "x"], ["<i8"], 1, b"\0" * 8], [[1], ["<i8"], 1, b"\0" * 8]):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode(msgpack.packb(msgpack.ExtType(protocol.COLUMNS_EXT, msgpack.packb(body))))
