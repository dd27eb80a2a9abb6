# -*- test-case-name: tests.test_config -*-
"""The raw text around channel records: fixture scripts and gateway rewriting.

Channel records are shipped as redis-cli scripts (`set KEY "quoted JSON"`
lines, tests/fixtures/channel-info.redis). `parse_redis_cli_script` reads that
format without redis-cli, and `rewrite_record_gateway` points a record's JSON
text at another gateway (a local simulator) while leaving every other field's
bytes exactly as they were.
"""

from __future__ import annotations

import json
import re

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_WHITESPACE = frozenset(b" \t\n\r\v\f")
# redis-cli's escapes inside double quotes; any other escaped byte is itself.
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b"}
_ESCAPES[ord("a")] = b"\a"

_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")

# The fields rewrite_record_gateway changes, and which kind of value each takes.
_HOST_FIELDS = ("gatewayIp", "channelIp")
_PORT_FIELDS = ("gatewayPort", "channelPort")


def split_redis_cli_arguments(line: bytes) -> list[bytes]:
    """Split one redis-cli command line into its arguments, the way redis-cli
    does: double quotes with \\" \\\\ \\n \\r \\t \\b \\a \\xHH escapes, single
    quotes with only \\', and bare words. Raises ValueError for an unbalanced
    quote or a quote followed by something other than a space."""
    arguments: list[bytes] = []
    position = 0
    length = len(line)

    while True:
        while position < length and line[position] in _WHITESPACE:
            position += 1
        if position >= length:
            return arguments

        current = bytearray()
        while position < length and line[position] not in _WHITESPACE:
            byte = line[position]
            if byte == ord('"'):
                position = _read_double_quoted(line, position + 1, current)
            elif byte == ord("'"):
                position = _read_single_quoted(line, position + 1, current)
            else:
                current.append(byte)
                position += 1
        arguments.append(bytes(current))


def _read_double_quoted(line: bytes, position: int, into: bytearray) -> int:
    """Append a double-quoted section to `into`; returns the index after it."""
    length = len(line)
    while position < length:
        byte = line[position]
        if byte == ord('"'):
            return _after_closing_quote(line, position)
        if byte != ord("\\") or position + 1 >= length:
            into.append(byte)
            position += 1
            continue

        escaped = line[position + 1]
        hex_digits = line[position + 2 : position + 4]
        if (
            escaped == ord("x")
            and len(hex_digits) == 2
            and all(each in _HEX_DIGITS for each in hex_digits)
        ):
            into.append(int(hex_digits, 16))
            position += 4
        else:
            into += _ESCAPES.get(escaped, bytes([escaped]))
            position += 2
    raise ValueError("unbalanced double quote")


def _read_single_quoted(line: bytes, position: int, into: bytearray) -> int:
    """Append a single-quoted section to `into`; returns the index after it."""
    length = len(line)
    while position < length:
        byte = line[position]
        if byte == ord("'"):
            return _after_closing_quote(line, position)
        if byte == ord("\\") and line[position + 1 : position + 2] == b"'":
            into.append(ord("'"))
            position += 2
        else:
            into.append(byte)
            position += 1
    raise ValueError("unbalanced single quote")


def _after_closing_quote(line: bytes, position: int) -> int:
    """redis-cli requires a space or the end of line after a closing quote."""
    following = position + 1
    if following < len(line) and line[following] not in _WHITESPACE:
        raise ValueError("closing quote must be followed by a space")
    return following


def parse_redis_cli_script(text: bytes) -> list[tuple[str, bytes]]:
    """The (key, value) pairs of a script of `set KEY VALUE` lines.

    Blank lines are skipped; any other command, or a SET with options, is a
    ValueError naming the line, so a fixture is never half loaded. Keys are
    UTF-8 text; values are the bytes redis-cli would store.
    """
    pairs: list[tuple[str, bytes]] = []
    for number, line in enumerate(text.split(b"\n"), start=1):
        try:
            arguments = split_redis_cli_arguments(line.rstrip(b"\r"))
        except ValueError as error:
            raise ValueError(f"line {number}: {error}") from None
        if not arguments:
            continue

        if arguments[0].lower() != b"set" or len(arguments) != 3:
            raise ValueError(f"line {number}: only `set KEY VALUE` is understood")
        try:
            key = arguments[1].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"line {number}: the key is not UTF-8") from None
        pairs.append((key, arguments[2]))
    return pairs


def _top_level_members(document: str) -> tuple[list[tuple[str, int, int]], int]:
    """(name, value start, value end) of each member of the JSON object in
    `document`, and the index of its closing brace. Uses the json module's
    own scanners, so the spans are exactly what json.loads reads."""
    decoder = json.JSONDecoder()

    def skip(index: int) -> int:
        return _JSON_WHITESPACE.match(document, index).end()

    def expect(index: int, character: str) -> int:
        if document[index : index + 1] != character:
            raise ValueError(f"expected {character!r} at index {index}")
        return skip(index + 1)

    position = expect(skip(0), "{")
    members: list[tuple[str, int, int]] = []
    if document[position : position + 1] == "}":
        closing = position
    else:
        while True:
            position = expect(position, '"')
            name, position = json.decoder.scanstring(document, position)
            position = expect(skip(position), ":")
            _, end = decoder.raw_decode(document, position)
            members.append((name, position, end))

            position = skip(end)
            if document[position : position + 1] == ",":
                position = skip(position + 1)
                continue
            closing = position
            expect(closing, "}")
            break

    if skip(closing + 1) != len(document):
        raise ValueError("text after the JSON object")
    return members, closing


def rewrite_record_gateway(raw: bytes, host: str, port: int) -> bytes:
    """The record's JSON text with gatewayIp/gatewayPort (and channelIp/
    channelPort, where present) set to host and port.

    Only those values change: every other member keeps its bytes, order and
    spacing. gatewayIp and gatewayPort are appended when the record lacks them.
    Raises ValueError when `raw` is not UTF-8 JSON holding an object, or for a
    port outside 1..65535.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an integer 1..65535, got {port!r}")
    if not isinstance(host, str) or not host:
        raise ValueError("host must be a non-empty string")

    document = raw.decode("utf-8")
    try:
        members, closing = _top_level_members(document)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} at {error.pos}") from None

    replacement = {name: json.dumps(host, ensure_ascii=False) for name in _HOST_FIELDS}
    replacement.update({name: str(port) for name in _PORT_FIELDS})

    # Spliced from the end so the earlier spans stay valid.
    present = {name for name, _, _ in members}
    missing = [name for name in ("gatewayIp", "gatewayPort") if name not in present]
    if missing:
        separator = "," if members else ""
        added = ",".join(f'"{name}":{replacement[name]}' for name in missing)
        document = document[:closing] + separator + added + document[closing:]
    for name, start, end in reversed(members):
        if name in replacement:
            document = document[:start] + replacement[name] + document[end:]
    return document.encode("utf-8")
