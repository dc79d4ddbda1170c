"""An emulator of the SYMREST subset the Symphony provider uses, served over TLS on 127.0.0.1 for the tests.

What is known about the API (verified in IBM's documentation), and emulated as documented:
- SYMREST lives at ``https://host:port/platform/rest/symrest/`` (default ports 8050-8060); workload
  through it needs Advanced Edition.
- Create a session: ``POST .../symrest/v1/clientapi/session?applicationName=...`` with a body holding
  ``sessionName``, ``sessionType``, ``sessionTag``, ``serviceName``, ``commonData`` and more.
- Submit tasks: ``PUT .../clientapi/session/tasks?applicationName&sessionId``, body ``taskInputList``
  (``inputDataBlock`` base64, ``taskPriority``, ``timeoutInSec``...), answer
  ``taskIds[{sequenceNum, taskId, errorMessage}]``.
- Auth: ``.../symrest/v1/auth/login``, renewed with ``GET .../auth/renew``; tokens last 8 hours; clients
  send the cookies ``platform.rest.token`` and ``platform.rest.certificate`` plus a ``csrftoken``
  parameter; TLS with the cluster's own CA file.

ASSUMED (the provider keeps the same assumptions in ``adapters/symphony/api.py``): login is a GET with
Basic credentials that sets both cookies and answers ``{"csrftoken": ...}`` (renew answers alike); a
create answers ``{"sessionId": ...}``; ``GET v1/clientapi/sessions?applicationName=`` lists the open
sessions; ``DELETE v1/clientapi/session?applicationName&sessionId`` closes one and ends its task;
``GET v1/resourcegroups/NAME/hosts`` lists hosts with ``ncpus`` and ``nram`` (MiB); a task refused for
want of a slot is answered with an ``errorMessage`` naming the slot.

Each submitted task really runs: the service (``python -m scaler.adapters.symphony.service``) starts here
in its own process group with the task input on its standard input, and closing the session kills the
group. Faults are injected per method and path (``fail``); ``expire_tokens`` ends every login early.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.symphony_tls import Tls, make_tls

BASE = "/platform/rest/symrest"
Answer = tuple[int, Any, list[str]]  # status, JSON body, Set-Cookie values


@dataclass
class Fault:
    method: str
    path: str  # the path after BASE, e.g. /v1/clientapi/session
    status: int
    message: str = "injected"
    times: int = 1
    commit: bool = False  # carry the request out, then answer the error (a lost answer)


@dataclass
class Task:
    task_id: str
    process: subprocess.Popen[bytes] | None = None
    state: str = "pending"


@dataclass
class EmulatedSession:
    session_id: str
    name: str
    tag: str
    service: str
    created: float
    state: str = "open"
    tasks: list[Task] = field(default_factory=list)


class Emulator:
    def __init__(
        self, directory: Path, users: dict[str, str], slots: int = 8, application: str = "ScalerWorker"
    ) -> None:
        self.directory, self.users, self.slots, self.application = directory, users, slots, "ScalerWorker"
        self.tls: Tls = make_tls(directory / "tls")
        self.lock = threading.RLock()
        self.sessions: dict[str, EmulatedSession] = {}
        self.tokens: dict[str, str] = {}  # token -> its csrf token
        self.faults: list[Fault] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self.hosts = [{"hostName": "emu1", "ncpus": 4, "nram": 8192}, {"hostName": "emu2", "ncpus": 8, "nram": 16384}]
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}{BASE}"

    # -- test controls ------------------------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, **more: Any) -> None:
        with self.lock:
            self.faults.append(Fault(method, path, status, **more))

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def open_sessions(self) -> list[EmulatedSession]:
        with self.lock:
            return [s for s in self.sessions.values() if s.state == "open"]

    def close(self) -> None:
        for session in list(self.sessions.values()):
            self.end(session, grace=0.0)
        self.server.shutdown()
        self.server.server_close()

    # -- the cluster ---------------------------------------------------------------------------------

    def running(self) -> int:
        return sum(1 for s in self.sessions.values() for t in s.tasks if self.poll(t) in ("pending", "running"))

    def poll(self, task: Task) -> str:
        if task.process is not None and task.state == "running" and task.process.poll() is not None:
            task.state = "done" if task.process.returncode == 0 else "error"
        return task.state

    def start(self, session: EmulatedSession, data: bytes) -> Task:
        task = Task(str(len(session.tasks) + 1))
        log = open(self.directory / f"{session.session_id}.{task.task_id}.log", "wb")
        argv = [sys.executable, "-m", "scaler.adapters.symphony.service"]
        task.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True)
        log.close()
        if task.process.stdin is not None:
            task.process.stdin.write(data)
            task.process.stdin.close()
        task.state = "running"
        session.tasks.append(task)
        return task

    def end(self, session: EmulatedSession, grace: float = 10.0) -> None:
        """Closes the session: its task's service gets SIGTERM (it passes it on to the workers), and
        whatever is left of its process group SIGKILL after ``grace`` seconds (in the background)."""
        session.state = "closed"
        for task in session.tasks:
            if task.process is not None and task.process.poll() is None:
                task.process.terminate()
                threading.Thread(target=_reap, args=(task.process, grace), daemon=True).start()

    def row(self, session: EmulatedSession) -> dict[str, Any]:
        states = Counter(self.poll(t) for t in session.tasks)
        return {
            "sessionId": session.session_id,
            "sessionName": session.name,
            "sessionTag": session.tag,
            "state": session.state.capitalize(),
            "createTime": session.created,
            "pendingTasks": states["pending"],
            "runningTasks": states["running"],
            "doneTasks": states["done"],
            "errorTasks": states["error"],
        }

    # -- requests ------------------------------------------------------------------------------------

    def authorised(self, headers: Any, query: dict[str, str]) -> bool:
        basic = str(headers.get("Authorization", ""))
        if basic.startswith("Basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            return self.users.get(user) == password
        cookies = SimpleCookie(str(headers.get("Cookie", "")))
        token = cookies["platform.rest.token"].value if "platform.rest.token" in cookies else ""
        certificate = "platform.rest.certificate" in cookies
        return bool(token) and certificate and self.tokens.get(token) == query.get("csrftoken")

    def login(self) -> tuple[int, dict[str, Any], list[str]]:
        token, csrf = secrets.token_hex(16), secrets.token_hex(8)
        self.tokens[token] = csrf
        cookies = [f"platform.rest.token={token}; Path=/; Secure", f"platform.rest.certificate=c{token}; Path=/"]
        return 200, {"csrftoken": csrf}, cookies

    def serve(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> Answer:
        """One request: (status, JSON answer, Set-Cookie values)."""
        with self.lock:
            self.calls[(method, path)] += 1
            fault = next((f for f in self.faults if (f.method, f.path) == (method, path)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if not fault.commit:
                    return fault.status, {"message": fault.message}, []
            answer = self.handle(method, path, query, headers, body)
            return (fault.status, {"message": fault.message}, []) if fault is not None else answer

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> Answer:
        if path == "/v1/auth/login" and method == "GET":
            basic = str(headers.get("Authorization", "")).startswith("Basic ")
            return self.login() if basic and self.authorised(headers, query) else (401, {"message": "bad login"}, [])
        if not self.authorised(headers, query):
            return 401, {"message": "token expired or missing"}, []
        if path == "/v1/auth/renew" and method == "GET":
            return self.login()
        if path.startswith("/v1/resourcegroups/") and path.endswith("/hosts") and method == "GET":
            return 200, {"hosts": self.hosts}, []
        if query.get("applicationName") != self.application:
            return 404, {"message": f"application {query.get('applicationName')!r} is not registered"}, []
        if path == "/v1/clientapi/sessions" and method == "GET":
            return 200, {"sessions": [self.row(s) for s in self.sessions.values() if s.state == "open"]}, []
        if path == "/v1/clientapi/session" and method == "POST":
            session_id = str(len(self.sessions) + 1)
            name, tag, service = (str(body.get(k, "")) for k in ("sessionName", "sessionTag", "serviceName"))
            self.sessions[session_id] = EmulatedSession(session_id, name, tag, service, time.time())
            return 200, {"sessionId": session_id}, []
        session = self.sessions.get(query.get("sessionId", ""))
        if session is None or session.state != "open":
            return 404, {"message": f"no open session {query.get('sessionId')!r}"}, []
        if path == "/v1/clientapi/session" and method == "DELETE":
            self.end(session)
            return 204, None, []
        if path == "/v1/clientapi/session/tasks" and method == "PUT":
            rows = []
            for number, task in enumerate(body.get("taskInputList", []), 1):
                if self.running() >= self.slots:
                    rows.append({"sequenceNum": number, "taskId": "", "errorMessage": "no free slot in ComputeHosts"})
                    continue
                started = self.start(session, base64.b64decode(task["inputDataBlock"]))
                rows.append({"sequenceNum": number, "taskId": started.task_id, "errorMessage": ""})
            return 200, {"taskIds": rows}, []
        return 405, {"message": f"{method} {path} is not part of the emulated API"}, []


def _reap(process: subprocess.Popen[bytes], grace: float) -> None:
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the workers too, if any outlived the service
    except ProcessLookupError:
        pass
    process.wait()


def _handler(emulator: Emulator) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            path = parts.path[len(BASE) :] if parts.path.startswith(BASE) else parts.path
            status, payload, cookies = emulator.serve(self.command, path, query, self.headers, body)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for cookie in cookies:
                self.send_header("Set-Cookie", cookie)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = answer

    return Handler
