"""Length-prefixed msgpack frames over raw file descriptors, shared by both sides of the sandbox.

A frame is a 4-byte big-endian length followed by a msgpack payload. numpy arrays travel as an ExtType
(dtype string, shape, raw bytes) so they are copied, never pickled: the trusted side must be able to decode
anything a hostile candidate sends without running its code. A `Columns` table (named 1-D arrays of one
length, as a scheduler's view of its queues) travels as one ExtType and arrives as a plain dict of arrays:
one extension instead of one per column, which is most of the cost of a policy call. Only stdlib, numpy and msgpack are used here
because this module is also loaded inside the sandbox by the runner.
"""
from __future__ import annotations

import errno
import os
import select
import struct
import time
from typing import Any

import msgpack
import numpy as np

HEADER = struct.Struct(">I")
NDARRAY_EXT = 1
COLUMNS_EXT = 2
MAX_COLUMNS = 256
MAX_DIMS = 32
MAX_DTYPE_LEN = 64
READ_CHUNK = 1 << 16
_ARRAY32 = struct.Struct(">BI")   # msgpack array 32: 0xdd, count
_UINT64 = struct.Struct(">BQ")    # msgpack uint 64: 0xcf, value
_BIN32 = struct.Struct(">BI")     # msgpack bin 32: 0xc6, length


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame (too large, undecodable, unknown type)."""


class PeerClosed(ProtocolError):
    """The peer closed its end (EOF) before a whole frame arrived."""


class FrameTimeout(Exception):
    """No whole frame arrived (or could be sent) before the deadline."""


class Interrupted(Exception):
    """One of the extra watched descriptors became readable while waiting (e.g. 'the process exited')."""


# ---------------------------------------------------------------- encoding

class Columns:
    """Named 1-D arrays of one length, sent as one extension; the receiver gets {name: array}."""

    __slots__ = ("arrays",)

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) > 1 or any(a.ndim != 1 or a.dtype.hasobject for a in arrays.values()):
            raise ValueError("Columns: 1-D arrays of one length and a plain dtype")
        self.arrays = arrays


def _columns_body(table: Columns) -> bytes:
    cols = table.arrays
    n = len(next(iter(cols.values()))) if cols else 0
    raw = b"".join(np.ascontiguousarray(a).tobytes() for a in cols.values())
    return msgpack.packb([list(cols), [a.dtype.str for a in cols.values()], n, raw], use_bin_type=True)


def _ndarray_body(arr: np.ndarray) -> bytes:
    """The extension body, msgpack [dtype str, shape, raw bytes], written by hand: a msgpack.packb call
    inside the outer packer's `default` costs ~13 µs (a fresh 256 KiB buffer each time), this ~1 µs."""
    dtype = arr.dtype.str.encode()
    head = [b"\x93\xd9", bytes((len(dtype),)), dtype, _ARRAY32.pack(0xDD, arr.ndim)]
    head += [_UINT64.pack(0xCF, n) for n in arr.shape]
    head.append(_BIN32.pack(0xC6, arr.nbytes))
    return b"".join(head) + arr.tobytes()


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("numpy arrays of dtype object cannot cross the sandbox boundary")
        arr = obj if obj.flags.c_contiguous else np.ascontiguousarray(obj)  # (which would make 0-d 1-d)
        return msgpack.ExtType(NDARRAY_EXT, _ndarray_body(arr))
    if isinstance(obj, Columns):
        return msgpack.ExtType(COLUMNS_EXT, _columns_body(obj))
    if isinstance(obj, np.generic):  # numpy scalars become plain Python numbers
        if obj.dtype.hasobject:
            raise TypeError("numpy object scalars cannot cross the sandbox boundary")
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot send a value of type {type(obj).__name__} across the sandbox boundary")


def encode(obj: Any) -> bytes:
    """Payload bytes for `obj` (no header). Raises TypeError for values that cannot be sent."""
    return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=False)


def _plain_dtype(dtype_str: Any) -> np.dtype:
    if not isinstance(dtype_str, str) or len(dtype_str) > MAX_DTYPE_LEN:
        raise ProtocolError("malformed dtype")
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"bad ndarray dtype {dtype_str!r}") from e
    if dtype.hasobject:
        raise ProtocolError("ndarray of dtype object refused")
    return dtype


def _columns(data: bytes) -> dict[str, np.ndarray]:
    parts = msgpack.unpackb(data, raw=False, use_list=True)
    if not (isinstance(parts, list) and len(parts) == 4):
        raise ProtocolError("malformed columns extension")
    names, dtypes, n, raw = parts
    if not (isinstance(names, list) and isinstance(dtypes, list) and len(names) == len(dtypes) <= MAX_COLUMNS
            and all(isinstance(x, str) for x in names) and isinstance(n, int) and n >= 0
            and isinstance(raw, bytes)):
        raise ProtocolError("malformed columns extension")
    types = [_plain_dtype(d) for d in dtypes]
    if n * sum(t.itemsize for t in types) != len(raw):
        raise ProtocolError("columns byte length does not match their dtypes and length")
    buf, out, off = bytearray(raw), {}, 0   # one copy; every column is a writable view of it
    for name, t in zip(names, types):
        out[name] = np.frombuffer(buf, dtype=t, count=n, offset=off)
        off += n * t.itemsize
    return out


def _ext_hook(code: int, data: bytes) -> Any:
    if code == COLUMNS_EXT:
        return _columns(data)
    if code != NDARRAY_EXT:
        raise ProtocolError(f"unknown msgpack extension type {code}")
    parts = msgpack.unpackb(data, raw=False, use_list=True)
    if not (isinstance(parts, list) and len(parts) == 3):
        raise ProtocolError("malformed ndarray extension")
    dtype_str, shape, raw = parts
    if not isinstance(dtype_str, str) or len(dtype_str) > MAX_DTYPE_LEN or not isinstance(raw, bytes):
        raise ProtocolError("malformed ndarray extension")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS
            and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise ProtocolError("malformed ndarray shape")
    dtype = _plain_dtype(dtype_str)
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        raise ProtocolError("ndarray byte length does not match its shape and dtype")
    # bytearray copy: the receiver gets a normal writable array that owns its memory
    return np.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)


def decode(payload: bytes | bytearray | memoryview) -> Any:
    """Decode one payload; anything malformed raises ProtocolError."""
    try:
        return msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=False,
                               ext_hook=_ext_hook)
    except ProtocolError:
        raise
    except Exception as e:  # msgpack raises many types on garbage; all mean the same thing here
        raise ProtocolError(f"undecodable frame: {type(e).__name__}: {e}") from None


# ---------------------------------------------------------------- sending

def _wait(fd: int, events: int, deadline: float | None, watch: tuple[int, ...] = ()) -> None:
    """Block until `fd` is ready for `events`; raise FrameTimeout / Interrupted."""
    poller = select.poll()
    poller.register(fd, events)
    for w in watch:
        poller.register(w, select.POLLIN)
    while True:
        timeout_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000) + 1)
        ready = poller.poll(timeout_ms)
        if any(r_fd == fd for r_fd, _ in ready):
            return
        if ready:
            raise Interrupted()
        if deadline is not None and time.monotonic() >= deadline:
            raise FrameTimeout()


def send_frame(fd: int, payload: bytes, deadline: float | None = None,
               watch: tuple[int, ...] = ()) -> None:
    """Write header + payload. Works on blocking fds, and on non-blocking ones with a deadline."""
    view = memoryview(HEADER.pack(len(payload)) + payload) if len(payload) < READ_CHUNK else None
    chunks = [view] if view is not None else [memoryview(HEADER.pack(len(payload))), memoryview(payload)]
    for chunk in chunks:
        while chunk:
            try:
                n = os.write(fd, chunk)
            except BlockingIOError:
                _wait(fd, select.POLLOUT, deadline, watch)
                continue
            chunk = chunk[n:]


# ---------------------------------------------------------------- receiving

class FrameReader:
    """Reads whole frames from one fd, keeping any bytes that arrived beyond the current frame."""

    def __init__(self, fd: int, max_bytes: int) -> None:
        self.fd = fd
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def pending(self) -> int:
        """Bytes already received that belong to no frame yet (unsolicited data from the peer)."""
        return len(self._buf)

    def _fill(self, deadline: float | None, watch: tuple[int, ...]) -> None:
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            _wait(self.fd, select.POLLIN, deadline, watch)
            return
        except OSError as e:
            if e.errno == errno.ECONNRESET:
                data = b""
            else:
                raise
        if not data:
            raise PeerClosed("peer closed the channel")
        self._buf += data

    def read(self, deadline: float | None = None, watch: tuple[int, ...] = ()) -> bytes | bytearray:
        """The next frame's payload. Raises PeerClosed, ProtocolError, FrameTimeout or Interrupted."""
        while len(self._buf) < HEADER.size:
            self._fill(deadline, watch)
        (length,) = HEADER.unpack_from(self._buf)
        if length > self.max_bytes:
            raise ProtocolError(f"frame of {length} bytes exceeds the {self.max_bytes}-byte limit")
        if len(self._buf) >= HEADER.size + length:
            payload = bytes(self._buf[HEADER.size:HEADER.size + length])
            del self._buf[:HEADER.size + length]
            return payload
        return self._read_large(length, deadline, watch)

    def _read_large(self, length: int, deadline: float | None, watch: tuple[int, ...]) -> bytearray:
        # Read straight into a preallocated buffer: big numpy replies are not copied chunk by chunk.
        out = bytearray(length)
        have = len(self._buf) - HEADER.size
        out[:have] = self._buf[HEADER.size:]
        self._buf.clear()
        view = memoryview(out)
        while have < length:
            try:
                n = os.readv(self.fd, [view[have:]])
            except BlockingIOError:
                _wait(self.fd, select.POLLIN, deadline, watch)
                continue
            if n == 0:
                raise PeerClosed("peer closed the channel mid-frame")
            have += n
        return out
