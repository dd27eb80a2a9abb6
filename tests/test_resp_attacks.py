"""Hostile and malformed input for the pure-Python RESP reader and encoder:
what hiredis refuses, PureReader refuses too, and nothing waits or allocates
on a peer's say-so."""

import hiredis
from twisted.trial import unittest

from cmppsvc import resp

REPLY = b"*3\r\n$5\r\nhello\r\n:42\r\n*2\r\n+OK\r\n-ERR caf\xc3\xa9\r\n"


def readers():
    return (resp.PureReader(), hiredis.Reader())


class NotRespTests(unittest.TestCase):
    """Input that is not RESP2 raises the protocol error, as with hiredis."""

    def assert_refused_by_both(self, data: bytes) -> None:
        for reader in readers():
            reader.feed(data)
            with self.assertRaises(hiredis.ProtocolError, msg=(reader, data)):
                reader.gets()

    def test_negative_lengths_other_than_minus_one(self):
        for data in (b"$-2\r\n", b"*-2\r\n", b"$-10\r\n", b"*-5\r\n"):
            self.assert_refused_by_both(data)

    def test_numbers_with_signs_spaces_or_underscores(self):
        for data in (b"$ 3\r\nabc\r\n", b"$+3\r\nabc\r\n", b"$3 \r\nabc\r\n"):
            self.assert_refused_by_both(data)
        for data in (b":1_000\r\n", b": 12\r\n", b":12 \r\n", b"*1_0\r\n"):
            self.assert_refused_by_both(data)

    def test_unknown_type_byte_before_its_line_ends(self):
        # An HTTP or TLS server answers without a CRLF the reader would wait for.
        for data in (b"HTTP/1.1 400", b"\x15\x03\x01\x00\x02", b"\r", b"\n"):
            self.assert_refused_by_both(data)

    def test_stays_refused_after_more_data(self):
        reader = resp.PureReader()
        reader.feed(b"?\r\n")
        self.assertRaises(hiredis.ProtocolError, reader.gets)
        reader.feed(b"+OK\r\n")
        self.assertRaises(hiredis.ProtocolError, reader.gets)


class IncompleteTests(unittest.TestCase):
    def test_every_prefix_byte_by_byte_is_false_then_the_reply(self):
        reader = resp.PureReader()
        for index in range(len(REPLY) - 1):
            reader.feed(REPLY, index, 1)
            self.assertIs(reader.gets(), False)
        reader.feed(REPLY, len(REPLY) - 1, 1)
        reply = reader.gets()
        self.assertEqual(reply[:2], [b"hello", 42])
        self.assertEqual(reply[2][0], b"OK")
        self.assertEqual(str(reply[2][1]), "ERR café")
        self.assertIs(reader.gets(), False)

    def test_announced_sizes_under_the_limits_only_wait(self):
        for header in (b"$%d\r\n" % resp.MAX_BULK, b"*%d\r\n" % resp.MAX_ARRAY):
            reader = resp.PureReader()
            reader.feed(header + b"$3\r\nab")
            self.assertIs(reader.gets(), False)
            self.assertLess(len(reader._buffer), 64)


class PackCommandOddTypesTests(unittest.TestCase):
    def test_bytes_subclass_is_encoded_as_bytes(self):
        class Key(bytes):
            pass

        self.assertEqual(
            resp.pure_pack_command(("GET", Key(b"k"))),
            hiredis.pack_command(("GET", Key(b"k"))),
        )

    def test_odd_types_are_refused_like_hiredis(self):
        for value in (True, None, bytearray(b"x"), 1j, object()):
            self.assertRaises(TypeError, resp.pure_pack_command, (value,))
            self.assertRaises(TypeError, hiredis.pack_command, (value,))
