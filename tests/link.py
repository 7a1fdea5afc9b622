"""A slow, breakable network link for the bridge's tests and benchmarks: a TCP proxy on loopback."""

from __future__ import annotations

import socket
import threading
import time


class ThrottledProxy:
    """A TCP proxy that carries the client's bytes at `rate` bytes/s, counts them, and can cut every connection once
    `cut_after` bytes have passed (a Wi-Fi drop mid-upload)."""

    def __init__(self, upstream: str, rate: float, cut_after: int | None = None):
        host, port = upstream.rsplit("/", 1)[-1].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate, self.cut_after, self.forwarded, self.cuts = rate, cut_after, 0, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.open += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src, dst, upstream):
        start, sent = time.monotonic(), 0
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                if upstream:
                    sent += len(data)
                    self.forwarded += len(data)
                    ahead = sent / self.rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)  # the link's speed
                    if self.cut_after is not None and self.forwarded >= self.cut_after and not self.cuts:
                        self.cuts += 1
                        for s in list(self.open):
                            s.close()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.closed.set()
        self.listener.close()
        for s in self.open:
            s.close()
