"""Run cmppsvc with a hand-written application: `twistd -ny cmppsvc.tac`.

Edit the Redis address below (or set CMPPSVC_REDIS); without one a private
redis-server is started with its data in ./cmppsvc-redis. CMPPSVC_HTTP, an
endpoint such as tcp:8080:interface=127.0.0.1, serves the HTTP API. Embedding cmppsvc in
another Twisted application is the same three lines: build a CmppService and
give it a parent.
"""

import os

from twisted.application.service import Application
from twisted.internet import reactor

from cmppsvc.redisconn import RedisAddress
from cmppsvc.runtime import CmppService

redis_url = os.environ.get("CMPPSVC_REDIS")
address = RedisAddress.from_url(redis_url) if redis_url else None

application = Application("cmppsvc")
CmppService(
    address,
    reactor,
    redis_directory="cmppsvc-redis",
    http_endpoint=os.environ.get("CMPPSVC_HTTP"),
).setServiceParent(application)
