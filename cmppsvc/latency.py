# -*- test-case-name: tests.test_outbound,tests.test_inbound -*-
"""Latency histograms kept per channel.

Two latencies matter to an SMS platform: submit->response (how fast the gateway
answers a SUBMIT) and response->report (how long the handset delivery takes).
Each is kept as a histogram with fixed, roughly logarithmic buckets in
milliseconds, so recording is one bisect and an increment, cheap enough for the
hot path, and percentiles can be read at any time.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in milliseconds; the last bucket takes everything above.
BUCKET_BOUNDS_MS: tuple[float, ...] = (
    (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300)
    + (500, 750, 1_000, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000)
    + (120_000, 300_000, 600_000, 1_800_000, 3_600_000, 21_600_000, 86_400_000)
    + (259_200_000,)
)


class LatencyHistogram:
    """Counts of latencies per bucket, with count, sum and maximum."""

    __slots__ = ("counts", "count", "total_ms", "max_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKET_BOUNDS_MS) + 1)
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def record(self, latency_ms: float) -> None:
        """Add one observation."""
        self.counts[bisect_left(BUCKET_BOUNDS_MS, latency_ms)] += 1
        self.count += 1
        self.total_ms += latency_ms
        if latency_ms > self.max_ms:
            self.max_ms = latency_ms

    def percentile(self, fraction: float) -> float:
        """The bucket bound below which `fraction` of observations fall.

        The answer is a bucket's upper bound (the maximum for the last bucket),
        so it overstates by at most one bucket width; 0.0 when empty.
        """
        if not self.count:
            return 0.0

        wanted = fraction * self.count
        seen = 0
        for index, bucket_count in enumerate(self.counts):
            seen += bucket_count
            if seen >= wanted and bucket_count:
                if index < len(BUCKET_BOUNDS_MS):
                    return min(BUCKET_BOUNDS_MS[index], self.max_ms)
                return self.max_ms
        return self.max_ms

    def summary(self) -> dict[str, float]:
        """Count, mean, p50, p90, p99 and max, for status displays."""
        mean = self.total_ms / self.count if self.count else 0.0
        return {
            "count": self.count,
            "mean_ms": round(mean, 3),
            "p50_ms": self.percentile(0.50),
            "p90_ms": self.percentile(0.90),
            "p99_ms": self.percentile(0.99),
            "max_ms": round(self.max_ms, 3),
        }


class ChannelLatencies:
    """The two histograms one channel keeps."""

    __slots__ = ("submit_to_response", "response_to_report")

    def __init__(self) -> None:
        self.submit_to_response = LatencyHistogram()
        self.response_to_report = LatencyHistogram()

    def summary(self) -> dict[str, dict[str, float]]:
        """Both summaries, keyed by the names used in status and logs."""
        return {
            "subRsptime": self.submit_to_response.summary(),
            "rspReptime": self.response_to_report.summary(),
        }
