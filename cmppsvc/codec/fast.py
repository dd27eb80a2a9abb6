# -*- test-case-name: tests.test_codec,tests.test_codec_hotpath -*-
"""Flattened encoders and decoders, generated once at import from ``layouts.py``.

The interpreter in ``schema.py`` walks a layout field by field; here each layout (with
one destination and a Msg_Length of N, the usual case) becomes a single precompiled
``struct.Struct`` for the whole frame and a generated function that packs or unpacks
it in one call, the way attrs generates ``__init__``.  Anything the fast path does not
cover (several destinations, a short LinkID, a value that does not fit) falls back to
the interpreter, which also produces the error naming the field.  The tests check that
both paths give the same bytes and the same objects.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import attrs

from cmppsvc.codec import codec, pdus
from cmppsvc.codec import constants as c
from cmppsvc.codec.layouts import (
    DESTS,
    LAYOUTS_20,
    LAYOUTS_30,
    RAW,
    RESPONSES_BY_LENGTH,
    TAIL_TEXT,
    TAIL_ZEROS,
    TEXT,
    U8,
    U32,
    U64,
    ZEROS,
    fixed_length,
    report_layout,
)
from cmppsvc.codec.octets import CACHE_LIMIT, DECODED, encoder_for

_FORMAT = {U8: "B", U32: "I", U64: "Q"}
_ERRORS = (struct.error, TypeError, ValueError, KeyError, AttributeError, IndexError)


class _StructByLength(dict):
    """Msg_Length (0..255) -> the whole frame's Struct with that content length."""

    def __init__(self, head: str, tail: str) -> None:
        super().__init__()
        self.head, self.tail = head, tail

    def __missing__(self, length: int) -> struct.Struct:
        if not 0 <= length <= 255:
            raise KeyError(length)
        compiled = self[length] = struct.Struct(f"{self.head}{length}s{self.tail}")
        return compiled


def _compile(source: str, namespace: dict[str, Any], name: str) -> Callable:
    exec(compile(source, f"<cmppsvc.codec.fast {name}>", "exec"), namespace)
    return namespace[name]


def _encoder(cls: type, layout: tuple, slow: Callable, pre: str = "") -> Callable:
    namespace: dict[str, Any] = {
        "slow": slow,
        "_ERRORS": _ERRORS,
        "CID": cls.command_id,
    }
    parts = {"head": ">III", "tail": ""}
    where = "head"
    lines = ["def encoder(pdu):"]
    args: list[str] = []
    block = STABLE_BLOCKS.get(cls.command_id)
    block_items: list[tuple] = []
    has_content = False

    for item in layout:
        kind, _wire, attribute, size = item
        if block is not None and (block_items or attribute == block[0]):
            if not block_items or block_items[-1][2] != block[1]:
                block_items.append(item)
                if attribute == block[1]:
                    namespace["B"] = _EncodedBlocks(block_items)
                    keys = ", ".join(f"pdu.{entry[2]}" for entry in block_items)
                    parts[where] += f"{namespace['B'].size}s"
                    args.append(f"B[({keys})]")
                continue
        if kind in _FORMAT:
            parts[where] += _FORMAT[kind]
            args.append(f"pdu.{attribute}")
        elif kind in (TEXT, TAIL_TEXT):
            namespace[f"E{size}"] = encoder_for(size)
            parts[where] += f"{size}s"
            args.append(f"E{size}[pdu.{attribute}]")
        elif kind == RAW:
            lines.append(f"    if len(pdu.{attribute}) > {size}: return slow(pdu)")
            parts[where] += f"{size}s"
            args.append(f"pdu.{attribute}")
        elif kind in (ZEROS, TAIL_ZEROS):
            parts[where] += f"{size}x"
        elif kind == DESTS:
            namespace[f"E{size}"] = encoder_for(size)
            lines.append(f"    dests = pdu.{attribute}")
            lines.append("    if type(dests) is not tuple or len(dests) != 1:")
            lines.append("        return slow(pdu)")
            parts[where] += f"B{size}s"
            args.append(f"1, E{size}[dests[0]]")
        else:
            has_content = True
            lines.append("    content = pdu.msg_content")
            lines.append(pre)
            lines.append("    if type(content) is not bytes: return slow(pdu)")
            lines.append("    length = len(content)")
            parts[where] += "B"
            where = "tail"
            args.append("length, content")

    head, tail = parts["head"], parts["tail"]
    if has_content:
        namespace["S"] = _StructByLength(head, tail)
        namespace["BASE"] = struct.calcsize(head + tail)
        pack = "S[length].pack(BASE + length, CID, pdu.seq, "
    else:
        compiled = struct.Struct(head + tail)
        namespace["S"], namespace["BASE"] = compiled, compiled.size
        pack = "S.pack(BASE, CID, pdu.seq, "
    lines.append("    try:")
    lines.append(f"        return {pack}{', '.join(args)})")
    lines.append("    except _ERRORS:")
    lines.append("        return slow(pdu)")
    return _compile(
        "\n".join(line for line in lines if line) + "\n", namespace, "encoder"
    )


class _EncodedBlocks(dict):
    """The values of a stable block (a tuple) -> its packed, checked bytes."""

    def __init__(self, items: list[tuple]) -> None:
        super().__init__()
        self.compiled = struct.Struct(
            ">"
            + "".join(_FORMAT.get(kind) or f"{size}s" for kind, _w, _a, size in items)
        )
        self.size = self.compiled.size
        self.text_sizes = [size if kind == TEXT else 0 for kind, _w, _a, size in items]

    def __missing__(self, values: tuple) -> bytes:
        checked = [
            encoder_for(size)[value] if size else value
            for value, size in zip(values, self.text_sizes)
        ]
        packed = self.compiled.pack(*checked)
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[values] = packed
        return packed


STABLE_BLOCKS = {
    c.SUBMIT: ("pk_total", "src_id"),
    c.DELIVER: ("dest_id", "msg_fmt"),
}
"""Runs of fields that are the same in most PDUs of a channel (service, fee and source
fields; the DELIVER's service number): the decoder reads each run as one raw block and
memoises its decoded values, instead of decoding a dozen fields every time."""


class _BlockCache(dict):
    """raw block bytes -> the decoded values of its span of class fields."""

    def __init__(self, decode_block: Callable[[bytes], tuple]) -> None:
        super().__init__()
        self.decode_block = decode_block

    def __missing__(self, raw: bytes) -> tuple:
        values = self.decode_block(raw)
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[raw] = values
        return values


def _block_decoder(cls: type, items: list[tuple]) -> tuple[Callable, list[str]]:
    """A function raw -> values for the block's span of class fields, and the span."""
    compiled = struct.Struct(
        ">" + "".join(_FORMAT.get(kind) or f"{size}s" for kind, _w, _a, size in items)
    )
    kinds = {attribute: kind for kind, _wire, attribute, _size in items}
    names = [field.name for field in attrs.fields(cls)]
    span = names[names.index(items[0][2]) : names.index(items[-1][2]) + 1]
    defaults = {field.name: field.default for field in attrs.fields(cls)}
    order = [attribute for _kind, _wire, attribute, _size in items]

    def decode_block(raw: bytes) -> tuple:
        unpacked = dict(zip(order, compiled.unpack(raw)))
        values = []
        for name in span:
            if name not in unpacked:
                values.append(defaults[name])
            elif kinds[name] == TEXT:
                values.append(DECODED[unpacked[name]])
            else:
                values.append(unpacked[name])
        return tuple(values)

    return decode_block, span


def _decoder(cls: type, layout: tuple, slow: Callable, post: str = "") -> Callable:
    namespace: dict[str, Any] = {"slow": slow, "D": DECODED, "cls": cls}
    by_attribute: dict[str, str] = {"seq": "seq"}
    parts = {"head": ">12x", "tail": ""}
    names: list[str] = []
    where = "head"
    count_offset = length_offset = None
    block = STABLE_BLOCKS.get(cls.command_id)
    block_items: list[tuple] = []
    span: list[str] = []

    def add(fmt: str, name: str | None) -> None:
        parts[where] += fmt
        if name is not None:
            names.append(name)

    for item in layout:
        kind, _wire, attribute, size = item
        if block is not None and (block_items or attribute == block[0]):
            if not block_items or block_items[-1][2] != block[1]:
                block_items.append(item)
                if attribute == block[1]:
                    add(f"{sum(entry[3] for entry in block_items)}s", "block")
                    decode_block, span = _block_decoder(cls, block_items)
                    namespace["B"] = _BlockCache(decode_block)
                continue
        local = f"f_{attribute}"
        if kind in _FORMAT:
            add(_FORMAT[kind], local)
            by_attribute[attribute] = local
        elif kind in (TEXT, TAIL_TEXT):
            add(f"{size}s", local)
            by_attribute[attribute] = f"D[{local}]"
        elif kind == RAW:
            add(f"{size}s", local)
            by_attribute[attribute] = local
        elif kind in (ZEROS, TAIL_ZEROS):
            add(f"{size}x", None)
        elif kind == DESTS:
            count_offset = struct.calcsize(parts["head"])
            add("B", "_count")
            add(f"{size}s", local)
            by_attribute[attribute] = f"(D[{local}],)"
        else:
            length_offset = struct.calcsize(parts["head"])
            add("B", "_length")
            names.append(local)
            by_attribute[attribute] = local
            where = "tail"

    lines = ["def decoder(data, seq):", "    size = len(data)"]
    head, tail = parts["head"], parts["tail"]
    if length_offset is not None:
        fixed = struct.calcsize(head + tail)
        namespace["S"] = _StructByLength(head, tail)
        lines.append(f"    if size < {length_offset + 1}: return slow(data, seq)")
        if count_offset is not None:
            lines.append(f"    if data[{count_offset}] != 1: return slow(data, seq)")
        lines.append(f"    length = data[{length_offset}]")
        lines.append(f"    if size != {fixed} + length: return slow(data, seq)")
        unpack = "S[length].unpack_from(data)"
    else:
        compiled = struct.Struct(head + tail)
        namespace["S"] = compiled
        lines.append(f"    if size != {compiled.size}: return slow(data, seq)")
        unpack = "S.unpack_from(data)"
    if names:
        targets = ", ".join(names) + ("," if len(names) == 1 else "")
        lines.append(f"    {targets} = {unpack}")

    arguments = []
    for field in attrs.fields(cls):
        if field.name in span:
            if field.name == span[0]:
                arguments.append("*B[block]")
            continue
        arguments.append(by_attribute.get(field.name, repr(field.default)))
    lines.append(f"    pdu = cls({', '.join(arguments)})")
    lines.append(post)
    lines.append("    return pdu")
    return _compile(
        "\n".join(line for line in lines if line) + "\n", namespace, "decoder"
    )


def _report_codec(version: int) -> tuple[Callable, Callable]:
    """A fast status report encoder and decoder for one layout."""
    layout = report_layout(c.is_version_30(version))
    size = layout[4][3]
    compiled = struct.Struct(f">Q7s10s10s{size}sI")
    e7, e10, e_number = encoder_for(7), encoder_for(10), encoder_for(size)

    def encode_report(report: pdus.StatusReport) -> bytes:
        try:
            return compiled.pack(
                report.msg_id,
                e7[report.stat],
                e10[report.submit_time],
                e10[report.done_time],
                e_number[report.dest_terminal_id],
                report.smsc_sequence,
            )
        except _ERRORS:
            return codec.encode_report(report, version)

    def decode_report(content: bytes, seq: int) -> pdus.StatusReport:
        if len(content) != compiled.size:
            return codec.decode_report(content, seq)
        v = compiled.unpack(content)
        return pdus.StatusReport(
            v[0], DECODED[v[1]], DECODED[v[2]], DECODED[v[3]], DECODED[v[4]], v[5]
        )

    return encode_report, decode_report


def _install(version: int) -> None:
    v30 = c.is_version_30(version)
    layouts = LAYOUTS_30 if v30 else LAYOUTS_20
    encoders = codec.ENCODERS_30 if v30 else codec.ENCODERS_20
    decoders = codec.DECODERS_30 if v30 else codec.DECODERS_20
    slow_encoders = codec.SLOW_ENCODERS_30 if v30 else codec.SLOW_ENCODERS_20
    slow_decoders = codec.SLOW_DECODERS_30 if v30 else codec.SLOW_DECODERS_20
    for cls in codec.PDU_CLASSES:
        command_id = cls.command_id
        pre = post = ""
        namespace_extra: dict[str, Any] = {}
        if cls is pdus.Deliver:
            report_encoder, report_decoder = _report_codec(version)
            pre = (
                "    if not content and pdu.report is not None:\n"
                "        content = report_encoder(pdu.report)"
            )
            post = (
                "    if pdu.registered_delivery == 1:\n"
                "        pdu.report = report_decoder(pdu.msg_content, seq)"
            )
            namespace_extra = {
                "report_encoder": report_encoder,
                "report_decoder": report_decoder,
            }
        encoder = _encoder(cls, layouts[command_id], slow_encoders[cls], pre)
        encoder.__globals__.update(namespace_extra)
        encoders[cls] = encoder
        if command_id == c.ACTIVE_TEST_RESP:
            continue
        if command_id in RESPONSES_BY_LENGTH:
            decoders[command_id] = _by_length(cls, slow_decoders[command_id])
            continue
        decoder = _decoder(cls, layouts[command_id], slow_decoders[command_id], post)
        decoder.__globals__.update(namespace_extra)
        decoders[command_id] = decoder


def _by_length(cls: type, slow: Callable) -> Callable:
    """Responses: pick the 2.0 or 3.0 flattened decoder by the frame's length."""
    short = _decoder(cls, LAYOUTS_20[cls.command_id], slow)
    long = _decoder(cls, LAYOUTS_30[cls.command_id], slow)
    short_size = c.HEADER_LENGTH + fixed_length(LAYOUTS_20[cls.command_id])

    def decoder(data: Any, seq: int) -> Any:
        if len(data) == short_size:
            return short(data, seq)
        return long(data, seq)

    return decoder


_install(c.VERSION_20)
_install(c.VERSION_30)
