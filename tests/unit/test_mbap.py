"""The MBAP framer, fed bytes: whole, split at every offset, concatenated, garbage, exception answers."""

from __future__ import annotations

import struct

import pytest

from stationmon.domain.mbap import (
    EXCEPTION_NAMES,
    MAX_REGISTERS,
    BadHeader,
    BadResponse,
    ExceptionResponse,
    Frame,
    FrameDecoder,
    MismatchedResponse,
    Registers,
    encode_read_request,
    parse_read_response,
)


def mbap(tid: int, unit: int, pdu: bytes, protocol_id: int = 0, length: int | None = None) -> bytes:
    """An MBAP frame as a device sends it; `length` overrides the header's length field."""
    return struct.pack(">HHHB", tid, protocol_id, len(pdu) + 1 if length is None else length, unit) + pdu


def answer(tid: int, unit: int, fc: int, registers: list[int]) -> bytes:
    """A good FC 3/4 answer carrying `registers`."""
    return mbap(tid, unit, bytes([fc, 2 * len(registers)]) + struct.pack(f">{len(registers)}H", *registers))


# ----------------------------------------------------------------------------------------------------
# Requests


@pytest.mark.parametrize(
    ("tid", "unit", "fc", "start", "count", "expected"),
    [
        (1, 1, 3, 0, 10, "0001 0000 0006 01 03 0000 000a"),
        (0xFFFF, 247, 4, 0x1234, 125, "ffff 0000 0006 f7 04 1234 007d"),
        (0, 0, 3, 0xFFFF, 1, "0000 0000 0006 00 03 ffff 0001"),
    ],
)
def test_read_request_bytes(tid: int, unit: int, fc: int, start: int, count: int, expected: str) -> None:
    assert encode_read_request(tid, unit, fc, start, count) == bytes.fromhex(expected.replace(" ", ""))


@pytest.mark.parametrize(
    ("tid", "unit", "fc", "start", "count"),
    [
        (1, 1, 6, 0, 1),  # write single register: never sent
        (1, 1, 16, 0, 1),  # write multiple registers
        (1, 1, 1, 0, 1),  # coils: not a register read
        (1, 1, 3, 0, 0),
        (1, 1, 3, 0, MAX_REGISTERS + 1),
        (1, 1, 3, 0xFFFF, 2),  # runs past the last address
        (1, 1, 3, -1, 1),
        (0x10000, 1, 3, 0, 1),
        (-1, 1, 3, 0, 1),
        (1, 256, 3, 0, 1),
    ],
)
def test_read_request_refuses_anything_but_a_valid_read(tid: int, unit: int, fc: int, start: int, count: int) -> None:
    with pytest.raises(ValueError):
        encode_read_request(tid, unit, fc, start, count)


# ----------------------------------------------------------------------------------------------------
# Cutting the stream into frames

GOOD = answer(7, 1, 3, [0x4224, 0x0000, 0x4208, 0x0000])
GOOD_FRAME = Frame(7, 1, bytes.fromhex("0308") + bytes.fromhex("4224000042080000"))


def test_whole_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(GOOD) == [GOOD_FRAME]
    assert decoder.buffered == 0 and not decoder.broken


@pytest.mark.parametrize("cut", range(1, len(GOOD)))
def test_frame_split_at_every_offset(cut: int) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(GOOD[:cut]) == []
    assert decoder.buffered == cut
    assert decoder.feed(GOOD[cut:]) == [GOOD_FRAME]
    assert decoder.buffered == 0


def test_frame_fed_byte_by_byte() -> None:
    decoder = FrameDecoder()
    events = [e for b in GOOD for e in decoder.feed(bytes([b]))]
    assert events == [GOOD_FRAME]


def test_concatenated_frames_come_out_in_order() -> None:
    second = mbap(8, 1, bytes([0x84, 2]))
    third = answer(9, 2, 4, [1])
    stream = GOOD + second + third
    expected = [GOOD_FRAME, Frame(8, 1, bytes([0x84, 2])), Frame(9, 2, bytes([4, 2, 0, 1]))]
    assert FrameDecoder().feed(stream) == expected
    for cut in range(1, len(stream)):
        decoder = FrameDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == expected


def test_three_frames_and_a_half() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(GOOD * 3 + GOOD[:5]) == [GOOD_FRAME] * 3
    assert decoder.buffered == 5
    assert decoder.feed(GOOD[5:]) == [GOOD_FRAME]


def test_shortest_and_longest_frames() -> None:
    shortest = mbap(1, 1, b"\x03")  # length 2: unit id and function code
    longest = mbap(2, 1, bytes([3, 250]) + bytes(250) + b"\x00")  # length 254
    assert FrameDecoder().feed(shortest + longest) == [Frame(1, 1, b"\x03"), Frame(2, 1, bytes([3, 250]) + bytes(251))]


@pytest.mark.parametrize(
    ("data", "protocol_id", "length"),
    [
        (b"\xde\xad\xbe\xef" * 4, 0xBEEF, 0xDEAD),  # what the fault test's server sends
        (mbap(1, 1, b"\x03\x02\x00\x01", protocol_id=1), 1, 5),  # wrong protocol id
        (mbap(1, 1, b"\x03\x02\x00\x01", protocol_id=0xFFFF), 0xFFFF, 5),
        (mbap(1, 1, b"", length=1), 0, 1),  # a length without room for the function code
        (mbap(1, 1, b"", length=0), 0, 0),
        (mbap(1, 1, b"\x03", length=255), 0, 255),  # longer than any Modbus PDU
        (b"HTTP/1.1 400 Bad Request\r\n", 0x5450, 0x2F31),  # wrong port
    ],
)
def test_garbage_breaks_the_stream(data: bytes, protocol_id: int, length: int) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(data) == [BadHeader(protocol_id, length)]
    assert decoder.broken and decoder.buffered == 0
    assert decoder.feed(GOOD) == []  # no way to find a frame boundary again: the caller reconnects
    assert f"protocol {protocol_id}, length {length}" in BadHeader(protocol_id, length).message


def test_frames_before_garbage_are_kept() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(GOOD + b"\x00\x09\x00\x07\x00\x05") == [GOOD_FRAME, BadHeader(7, 5)]


def test_garbage_is_seen_as_soon_as_the_header_is() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x01\x00") == []
    assert decoder.feed(b"\x02\x00\x06") == [BadHeader(2, 6)]


def test_wrong_length_too_short_leaves_garbage_behind() -> None:
    # the length says 4 (unit, FC, byte count, one byte) but 2 registers follow: the frame is cut
    # short, and what is left of it is not a header
    data = mbap(1, 1, bytes([3, 4, 0, 1, 0, 2]), length=4)
    events = FrameDecoder().feed(data)
    assert events[0] == Frame(1, 1, bytes([3, 4, 0]))
    assert isinstance(parse_read_response(events[0], 1, 3, 2), BadResponse)
    assert len(events) == 1  # 3 bytes left over: not yet a header


def test_wrong_length_too_long_waits_for_more() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(mbap(1, 1, bytes([3, 2, 0, 1]), length=9)) == []
    assert decoder.buffered == 11


# ----------------------------------------------------------------------------------------------------
# What a frame says about its request


def frame(unit: int, pdu: bytes, tid: int = 1) -> Frame:
    """A decoded frame (as FrameDecoder yields it)."""
    return Frame(tid, unit, pdu)


def test_registers() -> None:
    assert parse_read_response(GOOD_FRAME, 1, 3, 4) == Registers(bytes.fromhex("4224000042080000"))
    assert parse_read_response(frame(1, bytes([4, 2, 0xFF, 0x97])), 1, 4, 1) == Registers(b"\xff\x97")


@pytest.mark.parametrize("code", range(1, 12))
@pytest.mark.parametrize("fc", [3, 4])
def test_exception_codes(fc: int, code: int) -> None:
    result = parse_read_response(frame(1, bytes([fc | 0x80, code])), 1, fc, 10)
    assert result == ExceptionResponse(code)
    assert isinstance(result, ExceptionResponse)
    assert result.name == EXCEPTION_NAMES.get(code, "exception")


def test_exception_names() -> None:
    names = {code: ExceptionResponse(code).name for code in range(1, 12)}
    assert names == {
        1: "illegal_function",
        2: "illegal_address",
        3: "illegal_value",
        4: "device_failure",
        5: "acknowledge",
        6: "busy",
        7: "exception",
        8: "parity_error",
        9: "exception",
        10: "gateway_path",
        11: "gateway_no_response",
    }


def test_exception_from_another_unit_is_mismatched_not_the_devices() -> None:
    # a stray exception says nothing about the device asked (issue 16): not its illegal address
    result = parse_read_response(frame(9, bytes([0x83, 2])), 1, 3, 2)
    assert result == MismatchedResponse("exception 2 from device 9, asked 1")
    assert isinstance(result, BadResponse) and not isinstance(result, ExceptionResponse)


def test_exception_to_unit_zero_is_taken_from_any_unit() -> None:
    assert parse_read_response(frame(9, bytes([0x83, 11])), 0, 3, 2) == ExceptionResponse(11)


def test_exception_for_another_function_code_is_a_bad_response() -> None:
    result = parse_read_response(frame(1, bytes([0x84, 2])), 1, 3, 2)
    assert isinstance(result, BadResponse) and "bad answer to FC 3 for 2 registers: 018402" in result.message


def test_exception_without_its_code_is_a_bad_response() -> None:
    assert isinstance(parse_read_response(frame(1, bytes([0x83])), 1, 3, 2), BadResponse)


def test_answer_from_another_device() -> None:
    result = parse_read_response(frame(2, bytes([3, 2, 0, 1])), 1, 3, 1)
    assert result == MismatchedResponse("answer from device 2, asked 1")


def test_unit_zero_accepts_any_device() -> None:
    assert parse_read_response(frame(5, bytes([3, 2, 0, 1])), 0, 3, 1) == Registers(b"\x00\x01")


@pytest.mark.parametrize(
    "pdu",
    [
        bytes([4, 2, 0, 1]),  # input registers for a holding read
        bytes([3]),  # no byte count
        bytes([3, 4, 0, 1]),  # byte count says 2 registers, 1 came
        bytes([3, 2, 0, 1, 0, 2]),  # byte count says 1 register, 2 came
        bytes([3, 4, 0, 1, 0, 2]),  # 2 registers, 1 asked
        bytes([3, 2, 0]),  # half a register
    ],
)
def test_answers_that_do_not_fit_the_request(pdu: bytes) -> None:
    result = parse_read_response(frame(1, pdu), 1, 3, 1)
    assert isinstance(result, BadResponse)
    assert result.message == f"bad answer to FC 3 for 1 registers: {(bytes([1]) + pdu[:7]).hex()}..."


def test_request_answer_round_trip() -> None:
    request = encode_read_request(42, 3, 4, 100, 2)
    tid, _, _, unit, fc, start, count = struct.unpack(">HHHBBHH", request)
    assert (tid, unit, fc, start, count) == (42, 3, 4, 100, 2)
    (event,) = FrameDecoder().feed(answer(tid, unit, fc, [0xABCD, 0x0102]))
    assert isinstance(event, Frame) and event.transaction_id == 42
    assert parse_read_response(event, unit, fc, count) == Registers(bytes.fromhex("abcd0102"))
