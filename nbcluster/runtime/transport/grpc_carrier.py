"""The gRPC carrier (``grpc.aio``): how processes on other machines reach a head or a
node manager. Same services and messages as the framed carrier.

Every server checks the caller's credential in an interceptor. A call without a
credential of this cluster in its ``nbcluster-token`` metadata is answered
UNAUTHENTICATED, and a driver credential calling a method that needs the cluster token
PERMISSION_DENIED (``credentials.py``), by a handler that has no request deserializer,
so the payload is never parsed, let alone unpickled.

``grpc`` is imported only here, and only by processes that serve or dial TCP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio

from nbcluster.runtime import tls
from nbcluster.runtime.credentials import SCOPE_CLUSTER, SCOPE_DRIVER, Verifier, ca_for
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError
from nbcluster.runtime.transport.methods import TABLE, Method, methods_of, permission_message
from nbcluster.runtime.transport.refusals import Refusals

logger = logging.getLogger(__name__)

TOKEN_METADATA = "nbcluster-token"
_CODE_METADATA = "nbcluster-code"
_MAX_MESSAGE = 512 * 1024 * 1024
_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
]
#: A client redials a server that went away (a restarting head) within 2 s, not after
#: gRPC's default backoff of up to two minutes.
_CHANNEL_OPTIONS = [
    *_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
#: How often a channel that is not connected yet looks at why (:meth:`GrpcChannel.wait_ready`).
_PROBE_S = 0.25
#: A method no server has: a call to it only shows how the channel fails to connect.
_PROBE_PATH = "/nbcluster.Probe/WhyNotConnected"
#: A server also drops connections that do not finish the TLS/HTTP2 handshake in time
#: (idle connections), keeps metadata small (it is read before the token check), and
#: lets each stream send it at most 1 MiB ahead: with the window grown by bandwidth
#: probing, a refused 400 MB call made a TLS server take in ~12 MB (10 calls: +119 MB);
#: with this, +4 MB. Bulk data does not cross gRPC (objects use the object port).
_SERVER_OPTIONS = [
    *_OPTIONS,
    ("grpc.server_handshake_timeout_ms", 10_000),
    ("grpc.max_metadata_size", 16 * 1024),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 1 << 20),
]

Code = common_pb2.ErrorCode
_TO_GRPC = {
    Code.ERROR_CODE_UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Code.ERROR_CODE_INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Code.ERROR_CODE_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Code.ERROR_CODE_ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Code.ERROR_CODE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Code.ERROR_CODE_UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    Code.ERROR_CODE_PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Code.ERROR_CODE_CANCELLED: grpc.StatusCode.CANCELLED,
}


class CallContext:
    """What a handler sees of a gRPC call (the framed carrier passes its Connection)."""

    closed = False

    def __init__(self, context: grpc.aio.ServicerContext, verifier: Verifier) -> None:
        self.context = context
        self.peer = None
        self.state: dict[str, Any] = {}
        #: The scope of the caller's credential (the interceptor let it through).
        self.scope = verifier.scope_of(_presented(context.invocation_metadata())) or SCOPE_DRIVER

    def on_close(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(self)`` when the call ends."""
        self.context.add_done_callback(lambda _ctx: callback(self))


def _presented(metadata: Any) -> bytes:
    for key, value in metadata or ():
        if key == TOKEN_METADATA:
            return value.encode() if isinstance(value, str) else value
    return b""


def _denier(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def deny(_requests: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    # A request-streaming handler that never reads: gRPC does not take the request in
    # (a unary handler would read all of it — up to the message size limit — before
    # refusing), so a refused call costs at most the HTTP/2 flow-control window.
    # No request_deserializer either: nothing of it is ever parsed.
    return grpc.stream_unary_rpc_method_handler(deny)


class _TokenInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED without a credential of this cluster; PERMISSION_DENIED for a
    driver credential calling a method that needs the cluster token."""

    def __init__(self, verifier: Verifier, refusals: Refusals) -> None:
        self._verifier = verifier
        self._refusals = refusals
        self._unauthenticated = _denier(
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid or missing cluster token: pass the cluster's token "
            "(the `token` file in its session directory, or NBCLUSTER_TOKEN)",
        )
        self._denied = {
            m.path: _denier(grpc.StatusCode.PERMISSION_DENIED, permission_message(m))
            for m in TABLE
            if m.scope == SCOPE_CLUSTER
        }

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        scope = self._verifier.scope_of(_presented(details.invocation_metadata))
        if scope is None:
            self._refusals.note("bad or missing token")
            return self._unauthenticated
        if scope != SCOPE_CLUSTER and details.method in self._denied:
            self._refusals.note(f"{details.method} needs the cluster token, the caller has a driver credential")
            return self._denied[details.method]
        return await continuation(details)


def _unary(fn: Callable[..., Any], served: list[int], index: int, verifier: Verifier) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        served[index] += 1
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            # The caller gave up before this server got to the call (it was starved of
            # CPU): work for a reply no one reads would only make it later for the next.
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed before it was served")
        try:
            result = fn(request, CallContext(context, verifier))
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            return result
        except RemoteError as exc:
            await _abort(context, exc)

    return handle


def _streaming(fn: Callable[..., Any], served: list[int], index: int, verifier: Verifier) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        served[index] += 1
        try:
            async for item in fn(request, CallContext(context, verifier)):
                yield item
        except RemoteError as exc:
            await _abort(context, exc)

    return handle


def _bidi(fn: Callable[..., Any], served: list[int], index: int, verifier: Verifier) -> Callable[..., Any]:
    async def handle(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        served[index] += 1
        try:
            async for item in fn(requests, CallContext(context, verifier)):
                yield item
        except RemoteError as exc:
            await _abort(context, exc)

    return handle


async def _abort(context: grpc.aio.ServicerContext, exc: RemoteError) -> None:
    context.set_trailing_metadata(((_CODE_METADATA, str(int(exc.code))),))
    await context.abort(_TO_GRPC.get(exc.code, grpc.StatusCode.UNKNOWN), exc.message)


class GrpcServer:
    """Serves service implementations over gRPC on ``host:port`` (port 0: any), with
    TLS when given an ``identity`` (``tls.py``)."""

    def __init__(
        self, host: str, port: int, token: str, services: dict[str, object], served: list[int] | None = None,
        identity: tls.Identity | None = None,
    ) -> None:
        #: Calls received, by method index; share a Dispatcher's list to count both carriers.
        self.served = served if served is not None else [0] * len(TABLE)
        self._host = host
        self._port = port
        self._token = token
        self._services = services
        self._identity = identity
        self._server: grpc.aio.Server | None = None
        self.refusals = Refusals("gRPC port", log=logger)
        self.port: int = 0

    async def start(self) -> int:
        """Serve; returns the port."""
        verifier = Verifier(self._token)
        server = grpc.aio.server(interceptors=[_TokenInterceptor(verifier, self.refusals)], options=_SERVER_OPTIONS)
        for service, impl in self._services.items():
            handlers = {}
            full_name = ""
            for method in methods_of(service):
                fn = getattr(impl, method.name, None)
                if fn is None:
                    continue
                full_name = method.path.split("/")[1]
                if method.client_streaming:
                    factory, wrap = grpc.stream_stream_rpc_method_handler, _bidi
                elif method.server_streaming:
                    factory, wrap = grpc.unary_stream_rpc_method_handler, _streaming
                else:
                    factory, wrap = grpc.unary_unary_rpc_method_handler, _unary
                handlers[method.name] = factory(
                    wrap(fn, self.served, method.index, verifier),
                    request_deserializer=method.request.FromString,
                    response_serializer=method.reply.SerializeToString,
                )
            if handlers:
                server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(full_name, handlers),))
        try:
            if self._identity is not None:
                credentials = grpc.ssl_server_credentials([(self._identity.key_pem, self._identity.cert_pem)])
                self.port = server.add_secure_port(f"{self._host}:{self._port}", credentials)
            else:
                self.port = server.add_insecure_port(f"{self._host}:{self._port}")
        except RuntimeError:  # grpc >= 1.60 raises where older versions returned 0
            self.port = 0
        if not self.port:
            raise OSError(
                f"cannot listen on {self._host}:{self._port}: the port is in use, "
                "or the address is not one of this machine's"
            )
        await server.start()
        self._server = server
        return self.port

    async def stop(self, grace: float | None = 0.2) -> None:
        """Stop serving, letting calls end within ``grace`` seconds."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


def _translate(exc: grpc.aio.AioRpcError) -> Exception:
    code = exc.code()
    for key, value in exc.trailing_metadata() or ():
        if key == _CODE_METADATA:
            return RemoteError(int(value), exc.details() or "")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return RemoteError(Code.ERROR_CODE_UNAUTHENTICATED, exc.details() or "unauthenticated")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return RemoteError(Code.ERROR_CODE_PERMISSION_DENIED, exc.details() or "permission denied")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return ConnectionLost(exc.details() or code.name)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return RemoteError(Code.ERROR_CODE_UNIMPLEMENTED, exc.details() or "unimplemented")
    return RemoteError(Code.ERROR_CODE_INTERNAL, f"{code.name}: {exc.details()}")


class GrpcChannel:
    """A client of one gRPC server, with the call interface of a framed Connection.
    TLS, pinned to the cluster's CA, when ``token`` is of a TLS cluster
    (``credentials.ca_for``)."""

    def __init__(self, address: str, token: str, reconnect_wait_s: float = 0.0) -> None:
        self.address = address
        #: A call to the server that answered before but cannot be reached now waits
        #: this long for it to come back (a restarting head) before it fails.
        self.reconnect_wait_s = reconnect_wait_s
        ca = ca_for(token)
        self.tls = bool(ca)
        if ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
            self._channel = grpc.aio.secure_channel(address, credentials, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._metadata = ((TOKEN_METADATA, token),)
        self._stubs: dict[int, Any] = {}
        self.closed = False
        self.peer = None
        self.state: dict[str, Any] = {}
        self._answered = False  # the server answered a call once

    def _stub(self, method: Method) -> Any:
        stub = self._stubs.get(method.index)
        if stub is None:
            factory = self._channel.unary_stream if method.server_streaming else self._channel.unary_unary
            stub = factory(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.reply.FromString,
            )
            self._stubs[method.index] = stub
        return stub

    async def call(self, method: Method, request: Any, timeout: float | None = None) -> Any:
        """Call ``method``; its reply. asyncio.TimeoutError past ``timeout``; RemoteError or
        ConnectionLost for other failures."""
        try:
            try:
                reply = await self._stub(method)(request, metadata=self._metadata, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or not (self._answered and self.reconnect_wait_s):
                    raise
                reply = await self._call_when_back(method, request, timeout, exc)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise asyncio.TimeoutError(exc.details()) from exc
            raise _translate(exc) from exc
        self._answered = True
        return reply

    async def _call_when_back(self, method: Method, request: Any, timeout: float | None,
                              lost: grpc.aio.AioRpcError) -> Any:
        """The server answered before and cannot be reached now: wait (up to
        ``reconnect_wait_s``) for it to be back, then call again."""
        wait = self.reconnect_wait_s if timeout is None else min(timeout, self.reconnect_wait_s)
        try:
            return await self._stub(method)(request, metadata=self._metadata, timeout=wait, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and (timeout is None or wait < timeout):
                raise ConnectionLost(f"{lost.details()} (not back within {wait:g} s)") from exc
            raise

    def call_future(self, method: Method, request: Any) -> asyncio.Future:
        """Call ``method`` in the background; a future of its reply."""
        return asyncio.ensure_future(self.call(method, request))

    def notify(self, method: Method, request: Any) -> None:
        """Call ``method`` and ignore the reply."""
        fut = self.call_future(method, request)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def stream(self, method: Method, request: Any) -> AsyncIterator[Any]:
        """The replies of a server-streaming ``method``."""
        call = self._stub(method)(request, metadata=self._metadata)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from exc
        finally:
            call.cancel()

    def open_stream(self, method: Method) -> Any:
        """A bidirectional call (write()/read()), for the relay."""
        stub = self._channel.stream_stream(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.reply.FromString,
        )
        return stub(metadata=self._metadata)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the channel connects: while nothing listens (a process that is
        still starting) until ``timeout``, then ConnectionLost. A server that listens
        but cannot be talked to fails at once: a TLS handshake that fails (a server of
        another cluster, or one without TLS), or, without TLS, a server that speaks TLS."""
        ready = asyncio.ensure_future(self._channel.channel_ready())
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                await asyncio.wait({ready}, timeout=max(0.0, min(_PROBE_S, left)))
                if ready.done():
                    return ready.result()
                if left <= _PROBE_S:
                    raise ConnectionLost(f"cannot reach {self.address} within {timeout:g} s: nothing answered there "
                                         "(is the cluster up, and is this its address and port?)")
                refused = await self._refusal()
                if refused:
                    raise ConnectionLost(f"cannot connect to {self.address}: {refused}")
        finally:
            ready.cancel()

    async def _refusal(self) -> str:
        """Why the server at the address, which listens, cannot be talked to; "" while
        the channel may yet connect. The reason comes from the error of a call made
        without waiting (it fails at once, with the channel's last connection error)."""
        if self._channel.get_state() != grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            return ""
        probe = self._channel.unary_unary(_PROBE_PATH)
        try:
            await probe(b"", metadata=self._metadata, timeout=_PROBE_S, wait_for_ready=False)
            return ""
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                return ""  # it answered: it connects now
            details = exc.details() or ""
        if "handshake failed" in details.lower() and "SSL_ERROR_SSL" in details:  # TLS said no (not a closed socket)
            reason = details.rpartition("OPENSSL_internal:")[2].strip().removesuffix(": OK") or "no reason given"
            return (f"the TLS handshake failed ({reason}): a server of another cluster, or one without TLS; "
                    "use the token file of the cluster at this address")
        if not self.tls and "socket closed" in details.lower() and await asyncio.to_thread(tls.speaks_tls, self.address):
            return "that cluster uses TLS, use its token file, which carries its CA"
        return ""

    def on_close(self, callback: Callable[[Any], None]) -> None:  # pragma: no cover - no push
        """No-op: a gRPC channel has no close notification."""
        pass

    def close(self) -> None:
        """Close the channel."""
        if not self.closed:
            self.closed = True
            asyncio.ensure_future(self._channel.close())
