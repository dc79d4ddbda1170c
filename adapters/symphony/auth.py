"""Who the adapter is to SYMREST: the login-cookie + CSRF flow, or Basic, with credentials from config or environment.

``LoginAuthenticator`` (an ibm-cloud-sdk-core ``Authenticator``) logs in once with the user's name and
password, then sends the token cookies (``platform.rest.token``, ``platform.rest.certificate``) and the
``csrftoken`` parameter on every call. It renews the token (``GET v1/auth/renew``) ``renew_before`` seconds
before its ``token_lifetime`` ends, and ``invalidate`` (called by ``Symrest.call`` on a 401) makes the
next call log in again. How login answers is assumed (docs/symphony.md): the cookies are set on the
answer, and the CSRF token is the answer's JSON ``csrftoken`` or a ``csrftoken`` cookie. Credentials
come from the options or, left empty there, from the environment; nothing is built in.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ibm_cloud_sdk_core import BaseService
from ibm_cloud_sdk_core.authenticators import Authenticator, BasicAuthenticator
from scaler.adapters.errors import AuthError
from scaler.adapters.symphony.api import LOGIN, RENEW
from scaler.adapters.symphony.spec import SymphonyOptions

TOKEN_COOKIE = "platform.rest.token"
CERTIFICATE_COOKIE = "platform.rest.certificate"
CSRF = "csrftoken"


@dataclass(frozen=True)
class Token:
    cookies: dict[str, str] = field(repr=False)
    csrf: str = field(repr=False)
    expires: float  # time.monotonic() deadline


def present(token: Token, req: dict[str, Any]) -> None:
    """Puts the token on a prepared request: its cookies as a header, the CSRF token as a parameter."""
    req["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in token.cookies.items())
    req["params"] = {**(req.get("params") or {}), CSRF: token.csrf}


def credentials(options: SymphonyOptions) -> tuple[str, str]:
    """The user name and password: from the options, else the environment; ``AuthError`` naming both places."""
    username = options.username or os.environ.get(options.username_env, "")
    password = options.password or os.environ.get(options.password_env, "")
    if not username or not password:
        missing = "username" if not username else "password"
        env = options.username_env if not username else options.password_env
        raise AuthError(f"symphony: no {missing}: set options.{missing} or the environment variable {env}")
    return username, password


class LoginAuthenticator(Authenticator):  # type: ignore[misc]  # the SDK has no type hints
    def __init__(self, options: SymphonyOptions) -> None:
        self.options = options
        self.lock = threading.Lock()
        self.token: Token | None = None
        self.logins = 0
        self.renewals = 0

    def authentication_type(self) -> str:
        return "symphony-login"

    def validate(self) -> None:
        credentials(self.options)

    def authenticate(self, req: dict[str, Any]) -> None:
        present(self.current(), req)

    def invalidate(self) -> None:
        with self.lock:
            self.token = None

    def current(self) -> Token:
        with self.lock:
            now = time.monotonic()
            if self.token is not None and now < self.token.expires - self.options.renew_before:
                return self.token
            if self.token is not None and now < self.token.expires:
                self.token = self._fetch(RENEW, self.token)
                self.renewals += 1
            else:
                self.token = self._fetch(LOGIN, None)
                self.logins += 1
            return self.token

    def _fetch(self, path: str, current: Token | None) -> Token:
        """Log in (Basic) or renew (with the current cookies); the token from the answer's cookies."""
        if current is None:
            authenticator: Authenticator = BasicAuthenticator(*credentials(self.options))
        else:
            authenticator = _Cookies(current)
        service = BaseService(service_url=self.options.url, authenticator=authenticator)
        config: dict[str, Any] = {"timeout": self.options.request_timeout}
        if self.options.ca_file:
            config["verify"] = self.options.ca_file
        service.set_http_config(config)
        answer = service.send(service.prepare_request("GET", path, headers={"Accept": "application/json"}))
        jar = service.http_client.cookies
        cookies = {name: str(jar.get(name) or "") for name in (TOKEN_COOKIE, CERTIFICATE_COOKIE)}
        body = answer.get_result()
        csrf = str((body.get(CSRF) if isinstance(body, dict) else None) or jar.get(CSRF) or "")
        if not cookies[TOKEN_COOKIE] or not csrf:
            where = f"{self.options.url}{path}"
            raise AuthError(f"symphony: {where} answered without the {TOKEN_COOKIE} cookie or a {CSRF}")
        return Token(cookies, csrf, time.monotonic() + self.options.token_lifetime)


class _Cookies(Authenticator):  # type: ignore[misc]
    """The current token on a renew call."""

    def __init__(self, token: Token) -> None:
        self.token = token

    def authentication_type(self) -> str:
        return "symphony-renew"

    def validate(self) -> None:
        pass

    def authenticate(self, req: dict[str, Any]) -> None:
        present(self.token, req)


class LazyBasic(Authenticator):  # type: ignore[misc]
    """Basic on every call, with the credentials read when the first call is made (not at start)."""

    def __init__(self, options: SymphonyOptions) -> None:
        self.options = options

    def authentication_type(self) -> str:
        return "basic"

    def validate(self) -> None:
        credentials(self.options)

    def authenticate(self, req: dict[str, Any]) -> None:
        BasicAuthenticator(*credentials(self.options)).authenticate(req)


def make_authenticator(options: SymphonyOptions) -> Authenticator:
    """The options' flow: ``login`` or ``basic``; neither reads credentials or sends anything until the first call."""
    return LazyBasic(options) if options.auth == "basic" else LoginAuthenticator(options)
