"""uvicorn as a daemon component: started and stopped by the supervisor, no signals of its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from alertd.logs import get_logger

log = get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the supervisor owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """Serves the HTTP endpoint until the supervisor says stop (it stops last)."""

    name = "http"

    def __init__(self, app: FastAPI, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.config = uvicorn.Config(app, host=self.host, port=self.port, log_config=None,
                                     access_log=False, lifespan="off")
        self.server = _Server(self.config)
        self.socket: socket.socket | None = None

    def start(self) -> None:
        """Bind the port now, so a taken port fails start-up and READY means reachable."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.socket = sock
        log.info("http.listening", address=f"{self.host}:{sock.getsockname()[1]}")

    def close(self) -> None:
        """Release the listening socket."""
        if self.socket is not None:
            self.socket.close()

    async def run(self, stopping: asyncio.Event) -> None:
        """Serve; on ``stopping``, finish open requests and return."""
        if self.socket is None:
            self.start()
        assert self.socket is not None
        serving = asyncio.ensure_future(self.server.serve(sockets=[self.socket]))
        try:
            waiter = asyncio.ensure_future(stopping.wait())
            done, _ = await asyncio.wait([serving, waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if serving in done:
                serving.result()
                if not self.server.started:
                    address = f"{self.config.host}:{self.config.port}"
                    raise OSError(f"http: could not listen on {address}")
                return
            self.server.should_exit = True
            await serving
        finally:
            if not serving.done():
                serving.cancel()
