"""FastRedisProtocol encodes and decodes exactly as txredisapi's own protocol."""

import txredisapi
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from cmppsvc.redisprotocol import FastRedisProtocol, decode_reply

OPTIONS = {"charset": "utf-8", "convertNumbers": False}

arguments = st.lists(
    st.one_of(
        st.text(),
        st.binary(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)

reply_leaf = st.one_of(
    st.binary(),
    st.text().map(str.encode),
    st.integers(),
    st.none(),
    st.just(txredisapi.ResponseError("ERR wrong type")),
)
replies = st.recursive(
    reply_leaf, lambda inner: st.lists(inner, max_size=6), max_leaves=20
)


class EncodingTests(unittest.TestCase):
    def setUp(self):
        self.fast = FastRedisProtocol(**OPTIONS)
        self.plain = txredisapi.HiredisProtocol(**OPTIONS)

    @settings(max_examples=300, deadline=None)
    @given(arguments)
    def test_same_bytes_as_txredisapi(self, command):
        try:
            expected = self.plain._build_command(*command)
        except txredisapi.InvalidData:
            self.assertRaises(
                txredisapi.InvalidData, self.fast._build_command, *command
            )
            return
        self.assertEqual(self.fast._build_command(*command), expected)

    def test_text_that_cannot_be_encoded_is_refused_by_name(self):
        error = self.assertRaises(
            txredisapi.InvalidData, self.fast._build_command, "SET", "k", "\ud800"
        )
        self.assertIn("\\ud800", str(error))

    def test_other_settings_take_txredisapi_path(self):
        numbers = FastRedisProtocol(charset="utf-8", convertNumbers=True)
        self.assertEqual(numbers.tryConvertData(b"42"), 42)
        self.assertEqual(numbers.tryConvertData([b"1.5", b"x"]), [1.5, "x"])


class DecodingTests(unittest.TestCase):
    def setUp(self):
        self.fast = FastRedisProtocol(**OPTIONS)
        self.plain = txredisapi.HiredisProtocol(**OPTIONS)

    @settings(max_examples=300, deadline=None)
    @given(replies)
    def test_same_values_as_txredisapi(self, reply):
        self.assertEqual(
            repr(self.fast.tryConvertData(reply)),
            repr(self.plain.tryConvertData(reply)),
        )

    def test_text_decoded_numbers_kept_bad_bytes_kept(self):
        self.assertEqual(
            decode_reply([b"007", 7, [b"\xff\xfe", "\u4f60".encode()], None]),
            ["007", 7, [b"\xff\xfe", "\u4f60"], None],
        )

    def test_whole_reply_through_the_reader(self):
        received = []
        self.fast.replyReceived = received.append
        self.fast.dataReceived(b"*2\r\n$3\r\nabc\r\n*1\r\n:5\r\n")
        self.assertEqual(received, [["abc", [5]]])
