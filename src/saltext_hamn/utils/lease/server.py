"""The watchdog's TCP listener on (node address, heartbeat:lease_port): one exchange per connection."""

import logging
import socket
import threading
import time

from saltext_hamn.utils.lease import protocol

log = logging.getLogger("hamn-leased")

MAX_CLIENTS = 16  # concurrent connections; more are closed at once (a flood must not starve the tick)


class LeaseServer:
    def __init__(self, watchdog, address, port):
        self.watchdog, self.address, self.port = watchdog, address, port
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._thread = None
        self.listening = threading.Event()

    def _bind(self):
        """Bind, retrying while the address is not there yet (interface still coming up)."""
        complained = False
        while not self._stop.is_set():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.address, self.port))
                sock.listen(32)
                sock.settimeout(0.2)  # to notice stop()
                log.info("listening on %s:%s", self.address, self.port)
                return sock
            except OSError as exc:
                sock.close()
                if not complained:
                    log.warning("cannot listen on %s:%s (%s); retrying", self.address, self.port, exc.strerror)
                    complained = True
                self._stop.wait(1)
        return None

    def _serve_one(self, conn, peer):
        try:
            wd = self.watchdog
            op, sender, error = protocol.serve(conn, wd.key, wd.me, wd.senders(), wd.handle, wd.clock)
            if error and op is None and error.startswith("no request"):
                log.debug("connection from %s:%s closed without a request (a port probe?)", *peer)
            elif error:
                log.warning("refused %s from %s (%s:%s): %s", op or "a request", sender or "?", *peer, error)
        finally:
            conn.close()
            self._slots.release()

    def _run(self):
        sock = self._bind()
        if sock is None:
            return
        self.listening.set()
        with sock:
            while not self._stop.is_set():
                try:
                    conn, peer = sock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    time.sleep(0.05)
                    continue
                if not self._slots.acquire(blocking=False):
                    conn.close()
                    continue
                threading.Thread(target=self._serve_one, args=(conn, peer), daemon=True).start()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="lease-server", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
