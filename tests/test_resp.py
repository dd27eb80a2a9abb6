"""The pure-Python RESP encoder and reader give what hiredis gives."""

import hiredis
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from cmppsvc import resp

arguments = st.lists(
    st.one_of(
        st.text(),
        st.binary(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False),
        st.booleans(),
        st.builds(bytearray, st.binary(max_size=4)),
        st.builds(memoryview, st.binary(max_size=4)),
        st.none(),
    ),
    max_size=8,
)

reply_leaf = st.one_of(
    st.builds(lambda data: b"$%d\r\n%b\r\n" % (len(data), data), st.binary()),
    st.builds(lambda number: b":%d\r\n" % number, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda text: b"+%b\r\n" % text, st.from_regex(rb"\A[a-zA-Z ]*\Z")),
    st.builds(lambda text: b"-%b\r\n" % text, st.from_regex(rb"\AERR[a-z ]*\Z")),
    st.just(b"$-1\r\n"),
    st.just(b"*-1\r\n"),
)
encoded_replies = st.recursive(
    reply_leaf,
    lambda inner: st.lists(inner, max_size=5).map(
        lambda values: b"*%d\r\n%b" % (len(values), b"".join(values))
    ),
    max_leaves=20,
)


def outcome(function, *args):
    try:
        return function(*args)
    except Exception as error:
        return type(error)


def read_all(reader, stream: bytes, chunk: int) -> list:
    replies = []
    for start in range(0, len(stream), chunk):
        reader.feed(stream[start : start + chunk])
        reply = reader.gets()
        while reply is not False:
            replies.append(reply)
            reply = reader.gets()
    return replies


def comparable(value):
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, hiredis.ReplyError):
        return ("error", str(value))
    return value


class PackCommandTests(unittest.TestCase):
    @given(arguments)
    def test_same_bytes_or_same_refusal_as_hiredis(self, command):
        command = tuple(command)
        self.assertEqual(
            outcome(resp.pure_pack_command, command),
            outcome(hiredis.pack_command, command),
        )

    def test_unencodable_text_is_refused(self):
        with self.assertRaises(UnicodeError):
            resp.pure_pack_command(("\ud800",))


class ReaderTests(unittest.TestCase):
    @given(st.lists(encoded_replies, min_size=1, max_size=6), st.integers(1, 64))
    def test_same_replies_as_hiredis_whatever_the_chunks(self, replies, chunk):
        stream = b"".join(replies)
        expected = read_all(hiredis.Reader(), stream, len(stream))
        got = read_all(resp.PureReader(), stream, chunk)
        self.assertEqual(comparable(got), comparable(expected))
        self.assertEqual(len(got), len(replies))

    def test_error_reply_is_returned_as_the_reply_error_type(self):
        reader = resp.PureReader(replyError=KeyError)
        reader.feed(b"-ERR wrong type\r\n")
        reply = reader.gets()
        self.assertIsInstance(reply, KeyError)
        self.assertEqual(reply.args, ("ERR wrong type",))

    def test_nothing_complete_is_false(self):
        reader = resp.PureReader()
        self.assertIs(reader.gets(), False)
        reader.feed(b"*2\r\n$3\r\nabc\r\n$3\r\nde")
        self.assertIs(reader.gets(), False)
        reader.feed(b"f\r\n")
        self.assertEqual(reader.gets(), [b"abc", b"def"])
        self.assertIs(reader.gets(), False)

    def assert_refused(self, data: bytes, words: str) -> None:
        reader = resp.PureReader(protocolError=ValueError)
        reader.feed(data)
        with self.assertRaises(ValueError) as raised:
            reader.gets()
        self.assertIn(words, str(raised.exception))

    def test_garbage_is_a_protocol_error_that_names_it(self):
        self.assert_refused(b"?what\r\n", "unknown reply type")
        self.assert_refused(b":12x\r\n", "bad integer")
        self.assert_refused(b"$3\r\nabcde\r\n", "without its CRLF")

    def test_announced_sizes_are_bounded_before_waiting_for_them(self):
        self.assert_refused(b"$%d\r\n" % (resp.MAX_BULK + 1), "bulk string of")
        self.assert_refused(b"*%d\r\n" % (resp.MAX_ARRAY + 1), "array of")
        self.assert_refused(b"*1\r\n" * (resp.MAX_DEPTH + 1), "nested deeper")
        self.assert_refused(b"+" + b"x" * (resp.MAX_LINE + 1), "line too long")
