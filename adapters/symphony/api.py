"""The SYMREST calls the provider makes, in one place, each marked *verified* or *assumed*.

Verified against IBM's Symphony documentation: the base ``https://HOST:PORT/platform/rest/symrest``
(ports 8050-8060; workload needs Advanced Edition); creating a session with ``POST
v1/clientapi/session?applicationName=`` and a body of ``sessionName``, ``sessionType``, ``sessionTag``,
``serviceName``, ``commonData``...; submitting with ``PUT v1/clientapi/session/tasks?applicationName&sessionId``
and ``taskInputList`` (``inputDataBlock`` base64, ``taskPriority``, ``timeoutInSec``), answered by
``taskIds[{sequenceNum, taskId, errorMessage}]``; ``v1/auth/login`` and ``GET v1/auth/renew``; the
cookies ``platform.rest.token`` and ``platform.rest.certificate`` and the ``csrftoken`` parameter.

Assumed (not found in the documentation; correct them here against a real cluster): the answer of
a session create (``{"sessionId": ...}``); listing the application's sessions (``GET
v1/clientapi/sessions?applicationName=``, answered by ``{"sessions": [{sessionId, sessionName,
sessionTag, state, createTime, pendingTasks, runningTasks, doneTasks, errorTasks}]}``); closing a
session, which ends its running task (``DELETE v1/clientapi/session?applicationName&sessionId``); the
hosts of a resource group with their attributes (``GET v1/resourcegroups/NAME/hosts``, answered by
``{"hosts": [{hostName, ncpus, nram}]}``, ``nram`` in MiB); and how login answers (below, ``auth``).

The SDK retries only GETs: a create (POST) or a submit (PUT) retried on a 5xx could start a second
session or task, so those are never retried by the SDK; the provider looks sessions up by name first.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ibm_cloud_sdk_core import ApiException, BaseService, DetailedResponse
from ibm_cloud_sdk_core.authenticators import Authenticator
from ibm_cloud_sdk_core.http_adapter import SSLHTTPAdapter
from urllib3.util.retry import Retry

CLIENTAPI = "/v1/clientapi"
LOGIN = "/v1/auth/login"
RENEW = "/v1/auth/renew"
GET_RETRIES = Retry(
    total=2, backoff_factor=0.5, status_forcelist=(502, 504), allowed_methods=frozenset({"GET"}), raise_on_status=False
)


@dataclass(frozen=True)
class Session:
    session_id: str
    name: str
    tag: str
    state: str  # open, closed, aborted... (lower case)
    created: float
    pending: int
    running: int
    ended: int  # done or failed tasks


def session_of(row: dict[str, Any]) -> Session:
    def count(key: str) -> int:
        return int(row.get(key) or 0)

    return Session(
        str(row.get("sessionId", "")),
        str(row.get("sessionName", "")),
        str(row.get("sessionTag", "")),
        str(row.get("state", "")).lower(),
        float(row.get("createTime") or 0.0),
        count("pendingTasks"),
        count("runningTasks"),
        count("doneTasks") + count("errorTasks"),
    )


class Symrest(BaseService):  # type: ignore[misc]  # the SDK has no type hints
    """The SYMREST client: one object per adapter, called from the runner's threads."""

    def __init__(self, url: str, authenticator: Authenticator, ca_file: str, timeout: float) -> None:
        super().__init__(service_url=url, authenticator=authenticator)
        config: dict[str, Any] = {"timeout": timeout}
        if ca_file:
            config["verify"] = ca_file
        self.set_http_config(config)
        self.http_adapter = SSLHTTPAdapter(max_retries=GET_RETRIES)
        self.http_client.mount("https://", self.http_adapter)
        self.http_client.mount("http://", self.http_adapter)

    def call(self, method: str, path: str, params: dict[str, str], body: dict[str, Any] | None = None) -> Any:
        """One call; a 401 under the login flow logs in again and retries once (the token expired)."""
        try:
            return self._once(method, path, params, body)
        except ApiException as exc:
            invalidate = getattr(self.authenticator, "invalidate", None)
            if exc.status_code != 401 or invalidate is None:
                raise
        invalidate()
        return self._once(method, path, params, body)

    def _once(self, method: str, path: str, params: dict[str, str], body: dict[str, Any] | None) -> Any:
        request = self.prepare_request(method, path, params=params, data=body, headers={"Accept": "application/json"})
        answer: DetailedResponse = self.send(request)
        return answer.get_result()

    def create_session(self, application: str, body: dict[str, Any]) -> str:
        """POST a new session (verified); its id from the answer (assumed: ``sessionId``)."""
        answer = self.call("POST", f"{CLIENTAPI}/session", {"applicationName": application}, body)
        return str((answer or {}).get("sessionId", ""))

    def submit(self, application: str, session_id: str, data: bytes, timeout: int = 0) -> list[dict[str, Any]]:
        """PUT one task of input ``data`` into a session (verified); the answer's ``taskIds`` rows."""
        task = {"inputDataBlock": base64.b64encode(data).decode(), "taskPriority": 1, "timeoutInSec": timeout}
        params = {"applicationName": application, "sessionId": session_id}
        answer = self.call("PUT", f"{CLIENTAPI}/session/tasks", params, {"taskInputList": [task]})
        rows: list[dict[str, Any]] = list((answer or {}).get("taskIds", []))
        return rows

    def sessions(self, application: str) -> list[Session]:
        """The application's open sessions (assumed call and answer)."""
        answer = self.call("GET", f"{CLIENTAPI}/sessions", {"applicationName": application})
        return [session_of(row) for row in (answer or {}).get("sessions", [])]

    def close(self, application: str, session_id: str) -> None:
        """Close a session, ending its task (assumed call); one already gone (404) counts as closed."""
        try:
            self.call("DELETE", f"{CLIENTAPI}/session", {"applicationName": application, "sessionId": session_id})
        except ApiException as exc:
            if exc.status_code != 404:
                raise

    def hosts(self, resource_group: str) -> list[dict[str, Any]]:
        """The hosts of a resource group with their attributes (assumed call and answer)."""
        (name,) = self.encode_path_vars(resource_group)
        answer = self.call("GET", f"/v1/resourcegroups/{name}/hosts", {})
        rows: list[dict[str, Any]] = list((answer or {}).get("hosts", []))
        return rows
