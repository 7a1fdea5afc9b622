"""CURVE keys for a server that listens beyond loopback: creation, loading, and the ZAP allow-list.

Layout of a keys folder (made by `mace-dance keys DIR`):
  DIR/server.key, DIR/server.key_secret      the server's certificate (public part goes to clients)
  DIR/authorized/NAME.key                     public keys of the clients the server accepts
  DIR/clients/NAME.key, NAME.key_secret       client certificates to hand to each user
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class KeysError(ValueError):
    """A keys folder is missing or incomplete."""


@dataclass
class ServerKeys:
    """The server's key pair and the folder of authorised client public keys."""

    public: bytes
    secret: bytes
    authorized: Path


def create_keys(folder: Path, clients: list[str]) -> list[Path]:
    """Create (or extend) a keys folder with a server certificate and one certificate per client name.

    Secret key files are 0600 and the folders 0700 (made so under a 077 umask, then set so for files made before):
    a secret another account can read is no secret."""
    for name in clients:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise KeysError(f"client name {name!r} must be letters, digits, '-' or '_'")
    old = os.umask(0o077)  # `mace-dance keys` is one thread: nothing else writes files meanwhile
    try:
        made = _create(folder, clients)
    finally:
        os.umask(old)
    for path in (folder, folder / "authorized", folder / "clients"):
        os.chmod(path, 0o700)
    for secret in folder.rglob("*.key_secret"):
        os.chmod(secret, 0o600)
    return made


def _create(folder: Path, clients: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    if not (folder / "server.key_secret").is_file():
        pub, sec = zmq.auth.create_certificates(str(folder), "server")
        made += [Path(pub), Path(sec)]
    for sub in ("authorized", "clients"):
        (folder / sub).mkdir(exist_ok=True)
    for name in clients:
        pub, sec = zmq.auth.create_certificates(str(folder / "clients"), name)
        shutil.copy(pub, folder / "authorized" / f"{name}.key")
        made += [Path(pub), Path(sec)]
    return made


def load_server_keys(folder: Path) -> ServerKeys:
    """Read a keys folder made by `create_keys`."""
    secret_file = folder / "server.key_secret"
    if not secret_file.is_file():
        raise KeysError(f"{folder}: no server.key_secret (create keys with `mace-dance keys {folder}`)")
    public, secret = zmq.auth.load_certificate(str(secret_file))
    authorized = folder / "authorized"
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise KeysError(f"{folder}: no authorised client keys in {authorized}")
    return ServerKeys(public, secret, authorized)


def load_client_keys(secret_file: Path) -> tuple[bytes, bytes]:
    """A client's (public, secret) key pair from its .key_secret file."""
    public, secret = zmq.auth.load_certificate(str(secret_file))
    if secret is None:
        raise KeysError(f"{secret_file}: not a secret key file")
    return public, secret


def load_public_key(path: Path) -> bytes:
    """A public key from a .key (or .key_secret) file."""
    return zmq.auth.load_certificate(str(path))[0]


def start_authenticator(ctx: zmq.Context, keys: ServerKeys) -> ThreadAuthenticator:
    """ZAP handler that admits only the client public keys in the allow-list folder."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(keys.authorized))
    return auth


def make_server_socket_secure(sock: zmq.Socket, keys: ServerKeys) -> None:
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


class AllowList:
    """The allow-list folder as the server knows it now: re-read when a key file is added, changed or removed, so a
    removed key stops working at once (ZAP only checks a connection's handshake; messages are checked here)."""

    def __init__(self, auth: ThreadAuthenticator, folder: Path):
        self.auth, self.folder = auth, Path(folder)
        self._seen: tuple = ()
        self.keys: set[str] = set()
        self.refresh()

    def _signature(self) -> tuple:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in self.folder.glob("*.key")))

    def refresh(self) -> bool:
        """Re-read the folder if it changed; True when it did."""
        try:
            signature = self._signature()
        except OSError:  # a file removed while listing: read it next time
            return False
        if signature == self._seen:
            return False
        self._seen = signature
        self.auth.configure_curve(domain="*", location=str(self.folder))  # new handshakes see the change
        keys = set()
        for path in self.folder.glob("*.key"):
            try:
                keys.add(load_public_key(path).decode("ascii"))  # certificates hold keys z85-encoded already
            except (OSError, ValueError, TypeError):
                continue  # a half-written key file: not (yet) a key
        self.keys = keys
        return True

    def admits(self, user: str) -> bool:
        """Whether the connection's key (its z85 user id from the handshake) is still on the list."""
        return user in self.keys
