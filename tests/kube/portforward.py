"""``kubectl port-forward`` for the stand-in: a port on this machine's 127.0.0.1 whose
connections go to a port of a pod (in the pod's network namespace), so a test — or a
browser — reaches a server that runs in a pod."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from ..netns import in_netns


class PortForward:
    """Forward ``127.0.0.1:<port>`` here to ``ip:target`` in ``netns``; closed with
    every connection by :meth:`close`."""

    def __init__(self, netns: str, ip: str, target: int) -> None:
        self.netns, self.address = netns, (ip, target)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="port-forward", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = in_netns(self.netns, lambda: socket.create_connection(self.address, timeout=10))
                upstream.settimeout(None)
            except OSError:
                client.close()  # as kubectl: the client sees the connection end
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop listening and end every forwarded connection."""
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._thread.join(5)

    def __enter__(self) -> "PortForward":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
