"""A raw HTTP/2 client (h2 over asyncio, TLS or prior-knowledge h2c) for the requests
aioapns cannot be made to send: missing or repeated headers, other methods and paths."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset

from clarion.simulator.apns import ApnsSimulator


@dataclass
class H2Response:
    status: int
    headers: dict[str, str]
    body: bytes
    alpn: str | None


async def h2_request(
    simulator: ApnsSimulator,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    *,
    method: str = "POST",
    tls: bool = True,
) -> H2Response:
    context = simulator.client_ssl_context() if tls else None
    reader, writer = await asyncio.open_connection(
        simulator.host, simulator.port, ssl=context, server_hostname="localhost" if tls else None
    )
    ssl_object = writer.get_extra_info("ssl_object")
    alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
    connection = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    stream_id = connection.get_next_available_stream_id()
    request = [
        (":method", method),
        (":scheme", "https" if tls else "http"),
        (":authority", "localhost"),
        (":path", path),
        *headers,
    ]
    connection.send_headers(stream_id, request, end_stream=not body)
    for start in range(0, len(body), 16384):  # the default max frame size
        chunk = body[start : start + 16384]
        connection.send_data(stream_id, chunk, end_stream=start + 16384 >= len(body))
    writer.write(connection.data_to_send())
    response_headers: dict[str, str] = {}
    data = bytearray()
    try:
        while True:
            received = await asyncio.wait_for(reader.read(65536), 5)
            if not received:
                raise ConnectionError("the simulator closed the connection")
            for event in connection.receive_data(received):
                if isinstance(event, ResponseReceived) and event.stream_id == stream_id:
                    response_headers = dict(event.headers)
                elif isinstance(event, DataReceived) and event.stream_id == stream_id:
                    data += event.data
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, StreamReset) and event.stream_id == stream_id:
                    raise ConnectionError(f"stream reset: {event.error_code}")
                elif isinstance(event, StreamEnded) and event.stream_id == stream_id:
                    return H2Response(
                        int(response_headers[":status"]), response_headers, bytes(data), alpn
                    )
            writer.write(connection.data_to_send())
    finally:
        writer.close()
