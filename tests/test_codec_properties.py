# Property and fuzz tests for cmppsvc.codec (hypothesis).
"""Round trips over every PDU type and field range, fast path against interpreter,
and hostile frames that may only ever raise CodecError."""

from __future__ import annotations

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import (
    PDU_CLASSES,
    VERSION_20,
    VERSION_30,
    CodecError,
    Deliver,
    FrameBuffer,
    StatusReport,
    decode,
    encode,
    encode_report,
)
from cmppsvc.codec import codec as codec_module
from cmppsvc.codec.layouts import (
    CONTENT,
    DESTS,
    FIXED_SIZE,
    LAYOUTS_20,
    LAYOUTS_30,
    RAW,
    TAIL_TEXT,
    TEXT,
    report_layout,
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings(SETTINGS, max_examples=400)

VERSIONS = st.sampled_from((VERSION_20, 0x21, VERSION_30))
_ALPHABET = "0123456789abcdefXYZ+-:#.*中文短信"


def octet_text(size: int) -> st.SearchStrategy[str]:
    """Text that survives an Octet String: no NUL, no edge spaces, fits in GBK."""
    return st.text(alphabet=_ALPHABET, max_size=size).filter(
        lambda value: len(value.encode("gbk")) <= size
    )


def _field(kind: str, size: int) -> st.SearchStrategy:
    if kind in FIXED_SIZE:
        return st.integers(0, (1 << (8 * FIXED_SIZE[kind])) - 1)
    if kind in (TEXT, TAIL_TEXT):
        return octet_text(size)
    if kind == RAW:
        return st.binary(min_size=size, max_size=size)
    if kind == DESTS:
        return st.one_of(
            st.lists(octet_text(size), min_size=1, max_size=1),
            st.lists(octet_text(size), max_size=3),
            st.lists(octet_text(size), min_size=95, max_size=99),
        ).map(tuple)
    if kind == CONTENT:
        return st.binary(max_size=255)
    raise AssertionError(kind)


def pdus(cls: type, version: int) -> st.SearchStrategy:
    """Any valid ``cls`` for ``version``: fields outside its layout stay default."""
    layouts = LAYOUTS_30 if version >= VERSION_30 else LAYOUTS_20
    fields = {
        attribute: _field(kind, size)
        for kind, _wire, attribute, size in layouts[cls.command_id]
        if attribute
    }
    fields["seq"] = st.integers(0, 0xFFFFFFFF)
    strategy = st.builds(cls, **fields)
    if cls is Deliver:
        strategy = st.one_of(
            strategy.map(lambda pdu: attrs.evolve(pdu, registered_delivery=0)),
            st.builds(
                attrs.evolve,
                strategy,
                registered_delivery=st.just(1),
                msg_content=st.just(b""),
                report=reports(version),
            ),
        )
    return strategy


def reports(version: int) -> st.SearchStrategy[StatusReport]:
    fields = {
        attribute: _field(kind, size)
        for kind, _wire, attribute, size in report_layout(version >= VERSION_30)
    }
    return st.builds(StatusReport, **fields)


def any_pdu() -> st.SearchStrategy:
    return VERSIONS.flatmap(
        lambda version: st.tuples(
            st.just(version),
            st.sampled_from(PDU_CLASSES).flatmap(lambda cls: pdus(cls, version)),
        )
    )


def expected_after_round_trip(pdu: object, version: int) -> object:
    if isinstance(pdu, Deliver) and pdu.report is not None:
        return attrs.evolve(pdu, msg_content=encode_report(pdu.report, version))
    return pdu


def slow_tables(version: int) -> tuple[dict, dict]:
    if version >= VERSION_30:
        return codec_module.SLOW_ENCODERS_30, codec_module.SLOW_DECODERS_30
    return codec_module.SLOW_ENCODERS_20, codec_module.SLOW_DECODERS_20


class RoundTripTests(SynchronousTestCase):
    """encode then decode gives the PDU back, for every type, version and range."""

    @SETTINGS
    @given(any_pdu())
    def test_round_trip(self, case: tuple) -> None:
        version, pdu = case
        frame = encode(pdu, version)
        self.assertEqual(int.from_bytes(frame[:4], "big"), len(frame))
        expected = expected_after_round_trip(pdu, version)
        self.assertEqual(decode(frame, version), expected)

    @SETTINGS
    @given(any_pdu())
    def test_fast_path_matches_interpreter(self, case: tuple) -> None:
        version, pdu = case
        encoders, decoders = slow_tables(version)
        frame = encode(pdu, version)
        self.assertEqual(encoders[type(pdu)](pdu), frame)
        seq = int.from_bytes(frame[8:12], "big")
        self.assertEqual(decoders[pdu.command_id](frame, seq), decode(frame, version))

    @SETTINGS
    @given(st.lists(any_pdu(), min_size=1, max_size=8), st.data())
    def test_frame_buffer_any_chunking(self, cases: list, data: st.DataObject) -> None:
        frames = [encode(pdu, version) for version, pdu in cases]
        stream = b"".join(frames)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        buffer = FrameBuffer()
        received = []
        start = 0
        for cut in [*cuts, len(stream)]:
            received += buffer.feed(stream[start:cut])
            start = cut
        self.assertEqual(received, frames)


def _decode_everything(frames: list[bytes]) -> None:
    """Decode and re-encode in both versions; anything but CodecError escapes."""
    for frame in frames:
        for version in (VERSION_20, VERSION_30):
            try:
                pdu = decode(frame, version)
            except CodecError:
                continue
            try:
                encode(pdu, version)
            except CodecError:
                pass


PER_CLASS = settings(SETTINGS, max_examples=60)


def _per_class_test(cls: type):
    @PER_CLASS
    @given(
        VERSIONS.flatmap(
            lambda version: st.tuples(st.just(version), pdus(cls, version))
        )
    )
    def test(self: SynchronousTestCase, case: tuple) -> None:
        version, pdu = case
        frame = encode(pdu, version)
        expected = expected_after_round_trip(pdu, version)
        self.assertEqual(decode(frame, version), expected)
        encoders, decoders = slow_tables(version)
        self.assertEqual(encoders[cls](pdu), frame)
        self.assertEqual(decoders[cls.command_id](frame, pdu.seq), expected)

    test.__name__ = f"test_{cls.__name__}"
    test.__doc__ = f"{cls.__name__}: round trip, fast path equal to the interpreter."
    return test


PerClassRoundTripTests = type(
    "PerClassRoundTripTests",
    (SynchronousTestCase,),
    {f"test_{cls.__name__}": _per_class_test(cls) for cls in PDU_CLASSES},
)


class FuzzTests(SynchronousTestCase):
    """Random and mutated frames: only CodecError, never another exception."""

    @FUZZ
    @given(st.binary(max_size=600), st.integers(1, 64))
    def test_random_stream(self, stream: bytes, chunk: int) -> None:
        buffer = FrameBuffer()
        try:
            for start in range(0, len(stream), chunk):
                _decode_everything(buffer.feed(stream[start : start + chunk]))
        except CodecError as error:
            self.assertTrue(error.fatal)

    @FUZZ
    @given(
        st.integers(0, 0xFFFFFFFF),
        st.sampled_from(sorted(codec_module.CLASS_BY_COMMAND) + [0x10, 0x80000003]),
        st.binary(max_size=400),
    )
    def test_random_body_for_every_command(
        self, seq: int, command_id: int, body: bytes
    ) -> None:
        frame = (
            (12 + len(body)).to_bytes(4, "big")
            + command_id.to_bytes(4, "big")
            + seq.to_bytes(4, "big")
            + body
        )
        _decode_everything(FrameBuffer().feed(frame))

    @FUZZ
    @given(any_pdu(), st.data())
    def test_mutated_frames(self, case: tuple, data: st.DataObject) -> None:
        version, pdu = case
        frame = bytearray(encode(pdu, version))
        mutation = data.draw(st.sampled_from(("flip", "truncate", "extend", "byte")))
        if mutation == "flip":
            if len(frame) > 12:
                places = st.lists(st.integers(12, len(frame) - 1), max_size=8)
                for index in data.draw(places):
                    frame[index] ^= data.draw(st.integers(1, 255))
        elif mutation == "truncate":
            del frame[data.draw(st.integers(12, len(frame))) :]
        elif mutation == "extend":
            frame += data.draw(st.binary(min_size=1, max_size=64))
        else:
            # Overwrite one byte anywhere after Total_Length (a count, a length...).
            index = data.draw(st.integers(4, len(frame) - 1))
            frame[index] = data.draw(st.integers(0, 255))
        frame[:4] = len(frame).to_bytes(4, "big")
        _decode_everything(FrameBuffer().feed(bytes(frame)))
