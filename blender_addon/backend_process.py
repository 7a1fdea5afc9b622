"""The backend the add-on talks to: a local `mace-dance serve` it starts on loopback, or a remote server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import bpy

from bridge.client import BridgeClient

ADDON = __package__


class BackendSetupError(ValueError):
    """A setting keeps the backend from starting; the message names the setting."""


@dataclass
class _Backend:
    process: subprocess.Popen | None = None
    endpoint: str = ""
    started: float = 0.0


BACKEND = _Backend()


def preferences():
    """The add-on preferences, or None when the add-on is registered without them (e.g. from tests)."""
    try:
        return bpy.context.preferences.addons[ADDON].preferences
    except (KeyError, AttributeError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_python() -> str:
    """The Python that runs the local backend: the preference, $MACE_DANCE_PYTHON, or this interpreter."""
    prefs = preferences()
    pref = bpy.path.abspath(prefs.python) if prefs is not None and prefs.python else ""
    if pref and not (os.path.isfile(pref) and os.access(pref, os.X_OK)):
        raise BackendSetupError(f"The Backend Python set in the add-on preferences ({pref}) is not a program that "
                                "exists; point it at the python of the environment where mace-dance is installed.")
    return pref or os.environ.get("MACE_DANCE_PYTHON") or sys.executable


def remote_endpoint() -> str:
    """The remote server's address in Remote mode, else ''."""
    prefs = preferences()
    if prefs is None or prefs.mode != "REMOTE":
        return ""
    if not prefs.endpoint.strip():
        raise BackendSetupError("Remote mode needs the server's Address in the add-on preferences (it is empty).")
    return prefs.endpoint.strip()


def ensure_backend() -> str:
    """The endpoint to talk to: a remote address, or a local backend started on loopback (not waited for)."""
    remote = remote_endpoint()
    if remote:
        return remote
    if BACKEND.process is not None and BACKEND.process.poll() is None:
        return BACKEND.endpoint
    python = backend_python()
    BACKEND.endpoint = os.environ.get("MACE_DANCE_ENDPOINT") or f"tcp://127.0.0.1:{_free_port()}"
    if not os.environ.get("MACE_DANCE_ENDPOINT"):
        cmd = [python, "-m", "backend.cli", "serve", "--bind", BACKEND.endpoint]
        if os.environ.get("MACE_DANCE_MODEL_DIR"):
            cmd += ["--model-dir", os.environ["MACE_DANCE_MODEL_DIR"]]
        if os.environ.get("MACE_DANCE_VIDEO_MODEL_DIR"):
            cmd += ["--video-model-dir", os.environ["MACE_DANCE_VIDEO_MODEL_DIR"]]
        elif os.environ.get("MACE_DANCE_VIDEO_TINY"):
            cmd += ["--video-tiny"]
        try:
            BACKEND.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise BackendSetupError(f"The Backend Python ({python}) could not be started ({exc.strerror}); set it "
                                    "in the add-on preferences.") from None
        BACKEND.started = time.monotonic()
    return BACKEND.endpoint


def make_client() -> BridgeClient:
    """A client for the configured backend; remote servers with a public key get CURVE (and the user's key pair)."""
    import zmq
    import zmq.auth

    endpoint = ensure_backend()
    prefs = preferences()
    if prefs is not None and prefs.mode == "REMOTE" and prefs.server_key:
        keys = None
        if prefs.client_key_file:
            key_file = bpy.path.abspath(prefs.client_key_file)
            try:
                keys = zmq.auth.load_certificate(key_file)
            except (OSError, ValueError) as exc:
                raise BackendSetupError(f"Your key file set in the add-on preferences ({key_file}) could not be "
                                        f"read: {exc}") from None
        try:
            return BridgeClient(endpoint, timeout=5.0, server_public_key=prefs.server_key.strip().encode(),
                                client_keys=keys)
        except (zmq.ZMQError, ValueError) as exc:
            raise BackendSetupError(f"The server Address ({endpoint}) or Server public key in the add-on preferences "
                                    f"is not usable: {exc}") from None
    try:
        return BridgeClient(endpoint, timeout=5.0)
    except zmq.ZMQError as exc:
        raise BackendSetupError(f"The server Address in the add-on preferences ({endpoint}) is not usable: {exc}"
                                ) from None


def backend_exited(job_accepted: bool) -> str:
    """If the local backend process has exited: a sentence saying so (naming the setting when it never started)."""
    if BACKEND.process is None or BACKEND.process.poll() is None:
        return ""
    early = not job_accepted and time.monotonic() - BACKEND.started < 15
    BACKEND.process = None
    if early:
        return ("The local backend did not start: set 'Backend Python' in the add-on preferences to the Python where "
                "mace-dance is installed.")
    return "The local backend stopped unexpectedly; the scene is unchanged."


def stop_backend() -> None:
    """Stop the local backend if the add-on started one."""
    if BACKEND.process is not None and BACKEND.process.poll() is None:
        BACKEND.process.terminate()
        try:
            BACKEND.process.wait(5)
        except subprocess.TimeoutExpired:
            BACKEND.process.kill()
    BACKEND.process = None
