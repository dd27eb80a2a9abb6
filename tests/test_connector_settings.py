# test-case-name: tests.test_connector_settings
"""Connection settings and reconnect backoff: validated fields, delays by kind."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.backoff import (
    AUTHENTICATION,
    NETWORK,
    REFUSED,
    ReconnectBackoff,
    login_failure_kind,
)
from cmppsvc.settings import DEFAULT_RATE, channel_rate
from tests.test_protocol_support import PASSWORD, make_settings


class SettingsTests(SynchronousTestCase):
    """Bad values name their field; the password stays out of every text."""

    def test_defaults_are_the_reference_timers(self) -> None:
        settings = make_settings()
        self.assertEqual(
            (settings.response_timeout, settings.attempts, settings.heartbeat_interval),
            (60.0, 3, 180.0),
        )
        self.assertEqual((settings.window, settings.connections), (16, 1))
        self.assertEqual(settings.effective_rate, DEFAULT_RATE)

    def test_password_not_in_repr(self) -> None:
        self.assertNotIn(PASSWORD, repr(make_settings()))

    def test_bad_field_is_named(self) -> None:
        for field, value in (("window", 0), ("port", 70000), ("rate", -1)):
            with self.assertRaises(ValueError) as raised:
                make_settings(**{field: value})
            self.assertIn(field, str(raised.exception))

    def test_channel_rate_is_lowest_positive(self) -> None:
        self.assertEqual(channel_rate(200, "50"), 50.0)
        self.assertEqual(channel_rate(0, 30), 30.0)
        self.assertEqual(channel_rate(None, 0, ""), DEFAULT_RATE)


class BackoffTests(SynchronousTestCase):
    """A refused login waits far longer than a dropped link; delays are capped."""

    def test_kinds(self) -> None:
        self.assertEqual(login_failure_kind(3), AUTHENTICATION)
        self.assertEqual(login_failure_kind(2), AUTHENTICATION)
        self.assertEqual(login_failure_kind(9), REFUSED)

    def test_network_grows_and_caps(self) -> None:
        backoff = ReconnectBackoff(lambda: 0.0)
        delays = [backoff.delay(0) for _ in range(10)]
        self.assertEqual(delays[:4], [1.0, 2.0, 4.0, 8.0])
        self.assertEqual(delays[-1], 60.0)

    def test_authentication_waits_long(self) -> None:
        backoff = ReconnectBackoff(lambda: 0.0)
        backoff.failed(AUTHENTICATION)
        self.assertEqual(backoff.delay(0), 300.0)
        self.assertEqual(backoff.kind, AUTHENTICATION)
        backoff.failed(NETWORK)
        self.assertEqual(backoff.delay(0), 2.0)

    def test_jitter_and_reset(self) -> None:
        backoff = ReconnectBackoff(lambda: 0.5)
        self.assertEqual(backoff.delay(0), 1.5)
        backoff.stable()
        self.assertEqual(backoff.delay(0), 1.5)
