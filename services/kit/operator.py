"""Problems the operator fixes, not bugs: a port already taken, a variable unset, a
database out of reach. Each is an OperatorError whose message is one line saying what is
wrong and what to do; the `clarion` command prints that line and exits non-zero without
a traceback. Any other exception is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import socket


class OperatorError(RuntimeError):
    """A problem with the environment or the configuration; `str()` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class PortInUse(OperatorError):
    """Another process already listens on the address a server was given."""


class CannotListen(OperatorError):
    """The listen address is malformed, or not an address of this machine."""


class MissingSetting(OperatorError):
    """A variable the command needs is unset (the internal token)."""


class DatabaseUnavailable(OperatorError):
    """The database URL is malformed, names a driver that is not installed, or the
    database cannot be reached."""


class SchemaOutOfDate(OperatorError):
    """The schema is older than the code and this process may not migrate it."""


def split_address(address: str, variable: str) -> tuple[str, int]:
    """(host, port) of a `host:port` listen address ("" host: every interface)."""
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise CannotListen(
            f"{variable}={address!r} is not host:port; give e.g. 127.0.0.1:50051 or 0.0.0.0:50051"
        )
    return host.strip("[]"), int(port)


def check_can_listen(address: str, variable: str) -> None:
    """Raises PortInUse or CannotListen when a server could not listen on `address`
    (set by `variable`), so that it is said plainly before anything else happens.

    A probe, not a reservation: the server binds for itself afterwards. Port 0 (any free
    port) always passes. Like gRPC, an address that resolves to several (localhost)
    is usable when any of them is.
    """
    host, port = split_address(address, variable)
    if port == 0:
        return
    try:
        candidates = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        raise CannotListen(
            f"cannot listen on {address}: unknown host {host!r}; "
            f"set {variable} to an address of this machine, e.g. 127.0.0.1:{port}"
        ) from None
    failures: list[OSError] = []
    for family, kind, protocol, _, sockaddr in candidates:
        with socket.socket(family, kind, protocol) as probe:
            # As the servers bind: a port in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                failures.append(error)
                continue
        return
    in_use = [error for error in failures if error.errno == errno.EADDRINUSE]
    if in_use or failures:
        raise listen_failed(address, variable, (in_use or failures)[0])
    raise CannotListen(f"cannot listen on {address}: no address to bind; check {variable}")


def listen_failed(address: str, variable: str, error: OSError) -> OperatorError:
    """The OperatorError for a bind of `address` that failed with `error`."""
    if error.errno == errno.EADDRINUSE:
        _, port = split_address(address, variable)
        return PortInUse(
            f"port {port} is already in use ({address}): stop the process that holds it, "
            f"or set {variable} to a free address"
        )
    return CannotListen(
        f"cannot listen on {address}: {error.strerror or error}; "
        f"set {variable} to an address of this machine"
    )
