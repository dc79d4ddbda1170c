"""Watching the instance metadata service for a spot interruption notice, off the agent's loop.

About two minutes before EC2 reclaims a spot instance, ``GET /latest/meta-data/spot/instance-action``
answers 200 with ``{"action": "terminate", "time": "2026-12-01T19:00:00Z"}`` (404 until then). A
worker that sees it early can stop taking tasks, hand back the ones it has not started and let the
scheduler launch a replacement while its running tasks finish, instead of dying with all of them.

The poll runs on a daemon thread (urllib blocks; the agent's loop never must) with IMDSv2: a token
from ``PUT /latest/api/token``, sent back in ``X-aws-ec2-metadata-token``. A service that refuses
tokens (IMDSv1 only) is read without one. Errors are logged once and the poll keeps going quietly:
an unreachable metadata service (not on EC2, a firewall) must not fill the worker's log. urllib is
imported by the watcher itself: every worker imports this module, few watch (urllib, http and ssl
would add about 6 MB to each agent and each task process forked from it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

log = logging.getLogger(__name__)

METADATA_ENV = "SCALER_INSTANCE_METADATA"
REAL_METADATA = "http://169.254.169.254"
TOKEN_TTL = 21600  # seconds a token is asked for; renewed a minute before it ends
TIMEOUT = 1.0  # per request: the service answers in milliseconds or not at all
DEFAULT_NOTICE = 120.0  # seconds left when the notice's time cannot be read (EC2 gives two minutes)


@dataclass(frozen=True)
class Notice:
    """An interruption notice as read: what EC2 will do, and how long the worker has (from now)."""

    action: str
    seconds_left: float
    deadline: float  # time.monotonic() at which the instance goes


def parse_notice(body: bytes, now: float | None = None) -> Notice:
    """A notice from the service's JSON; an unreadable time means the usual two minutes."""
    wall = time.time() if now is None else now
    action, seconds = "terminate", DEFAULT_NOTICE
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            action = str(data.get("action", action))[:64]
            when = str(data.get("time", ""))
            if when:
                moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=timezone.utc)
                seconds = max(0.0, moment.timestamp() - wall)
    except ValueError:
        pass
    return Notice(action, seconds, time.monotonic() + seconds)


class InterruptionWatcher:
    """Polls ``base_url`` every ``interval`` seconds on a daemon thread until a notice is seen.

    The agent reads ``notice`` from its own loop (a single reference, set once)."""

    def __init__(self, base_url: str, interval: float = 5.0) -> None:
        self.base = base_url.rstrip("/")
        self.interval = interval
        self.notice: Notice | None = None
        self._token = ""
        self._token_until = 0.0
        self._tokens = True  # False once the service refused IMDSv2 (then IMDSv1)
        self._complained = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="interruption-watcher", daemon=True)

    def start(self) -> None:
        log.info("watching %s for a spot interruption notice every %gs", self.base, self.interval)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                notice = self.poll()
            except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSErrors
                if not self._complained:
                    self._complained = True
                    log.warning("cannot read the instance metadata at %s (%s); still trying, quietly", self.base, exc)
                notice = None
            if notice is not None:
                self.notice = notice
                return
            self._stop.wait(self.interval)

    def poll(self) -> Notice | None:
        """One look: the notice, or None while the service answers 404."""
        headers = {}
        token = self._get_token()
        if token:
            headers["X-aws-ec2-metadata-token"] = token
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"{self.base}/latest/meta-data/spot/instance-action", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return parse_notice(answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # the token expired early or the service restarted
                self._token_until = 0.0
            if exc.code in (401, 404):
                return None
            raise

    def _get_token(self) -> str:
        if not self._tokens:
            return ""
        now = time.monotonic()
        if self._token and now < self._token_until:
            return self._token
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"{self.base}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                self._token = answer.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404, 405):  # no IMDSv2 here: read without a token
                self._tokens = False
                return ""
            raise
        self._token_until = now + TOKEN_TTL - 60
        return self._token
