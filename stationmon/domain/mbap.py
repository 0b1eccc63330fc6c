"""Modbus TCP framing (MBAP), sans I/O: bytes in, frames and answers out.

stationmon only reads (FC 3 and 4). After a `BadHeader` the stream has lost sync and no frame boundary
can be found again, so the decoder stops and the caller drops the connection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "EXCEPTION_NAMES",
    "MAX_LENGTH",
    "MAX_REGISTERS",
    "READ_FUNCTION_CODES",
    "BadHeader",
    "BadResponse",
    "ExceptionResponse",
    "Frame",
    "FrameDecoder",
    "MismatchedResponse",
    "Registers",
    "encode_read_request",
    "parse_read_response",
]

READ_FUNCTION_CODES = frozenset({3, 4})
MAX_REGISTERS = 125  # per FC 3/4 request (the spec's limit: 250 data bytes in a 253-byte PDU)
MAX_LENGTH = 254  # unit id + the largest PDU (253 bytes)
_MIN_LENGTH = 2  # unit id + function code

# Modbus exception codes -> the reason label used in metrics and logs (7 and 9 are not in the spec).
EXCEPTION_NAMES = {
    1: "illegal_function",
    2: "illegal_address",
    3: "illegal_value",
    4: "device_failure",
    5: "acknowledge",
    6: "busy",
    8: "parity_error",
    10: "gateway_path",
    11: "gateway_no_response",
}

_HEADER = struct.Struct(">HHH")  # transaction id, protocol id, length
_READ_REQUEST = struct.Struct(">HHHBBHH")  # header, unit id, function code, start, count


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete MBAP frame: the header's transaction and unit ids, and the PDU."""

    transaction_id: int
    unit_id: int
    pdu: bytes  # function code first


@dataclass(frozen=True, slots=True)
class BadHeader:
    """Bytes that are not an MBAP header: the stream cannot be resynchronised."""

    protocol_id: int
    length: int

    @property
    def message(self) -> str:
        """What was wrong, for the log."""
        return f"bad MBAP header (protocol {self.protocol_id}, length {self.length})"


@dataclass(frozen=True, slots=True)
class Registers:
    """A good answer to a read: the registers' bytes, big-endian, two per register."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """The device answered with a Modbus exception code (illegal address, busy, ...)."""

    code: int

    @property
    def name(self) -> str:
        """The code's reason label, "exception" for a code the spec does not name."""
        return EXCEPTION_NAMES.get(self.code, "exception")


@dataclass(frozen=True, slots=True)
class BadResponse:
    """An answer that does not fit its request (function code, byte count, unit id)."""

    message: str


@dataclass(frozen=True, slots=True)
class MismatchedResponse(BadResponse):
    """An answer (registers or an exception) from another device than the one asked."""


def encode_read_request(transaction_id: int, unit_id: int, function_code: int, start: int, count: int) -> bytes:
    """The MBAP frame reading `count` registers from `start` with FC 3 or 4; ValueError for anything else."""
    if function_code not in READ_FUNCTION_CODES:
        raise ValueError(f"function code {function_code}: only reads (3, 4) are sent")
    if not 1 <= count <= MAX_REGISTERS or not 0 <= start <= 0x10000 - count:
        raise ValueError(f"cannot read {count} registers from {start}")
    if not 0 <= transaction_id <= 0xFFFF or not 0 <= unit_id <= 0xFF:
        raise ValueError(f"transaction id {transaction_id} or unit id {unit_id} out of range")
    return _READ_REQUEST.pack(transaction_id, 0, 6, unit_id, function_code, start, count)


class FrameDecoder:
    """Cuts a byte stream into MBAP frames; keeps partial frames until the rest arrives."""

    __slots__ = ("_buffer", "broken")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.broken = False  # True after a BadHeader: every later byte is ignored

    def feed(self, data: bytes) -> list[Frame | BadHeader]:
        """The frames completed by `data`, in order; a BadHeader ends the list and the stream."""
        if self.broken:
            return []
        buf = self._buffer
        buf += data
        events: list[Frame | BadHeader] = []
        while len(buf) >= 6:
            tid, protocol_id, length = _HEADER.unpack_from(buf)
            if protocol_id != 0 or not _MIN_LENGTH <= length <= MAX_LENGTH:
                self.broken = True
                buf.clear()
                events.append(BadHeader(protocol_id, length))
                break
            end = 6 + length
            if len(buf) < end:
                break
            events.append(Frame(tid, buf[6], bytes(buf[7:end])))
            del buf[:end]
        return events

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)


def parse_read_response(
    frame: Frame, unit_id: int, function_code: int, count: int
) -> Registers | ExceptionResponse | BadResponse:
    """What `frame` says about a read of `count` registers with `function_code` sent to `unit_id`.

    An answer from another unit id, an exception included, is a MismatchedResponse: it says nothing
    about the device asked (a gateway answers with the unit id of the request); unit id 0 accepts any.
    """
    pdu = frame.pdu
    is_exception = len(pdu) >= 2 and pdu[0] == function_code | 0x80
    if frame.unit_id != unit_id and unit_id != 0:
        what = f"exception {pdu[1]}" if is_exception else "answer"
        return MismatchedResponse(f"{what} from device {frame.unit_id}, asked {unit_id}")
    if is_exception:
        return ExceptionResponse(pdu[1])
    if pdu[0] != function_code or len(pdu) < 2 or pdu[1] != 2 * count or len(pdu) != 2 + 2 * count:
        head = (bytes([frame.unit_id]) + pdu[:7]).hex()
        return BadResponse(f"bad answer to FC {function_code} for {count} registers: {head}...")
    return Registers(pdu[2:])
