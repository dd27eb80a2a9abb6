# -*- test-case-name: tests.test_endtoend -*-
"""cmppsvc: a Twisted client service for the CMPP 2.0 and 3.0 SMS gateway protocols."""

__version__ = "0.1.0"
