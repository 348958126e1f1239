"""The stateless MCP wire of protocol revision 2026-07-28, as a small ASGI app the
conformance fixture (conformance_server.py) mounts beside the 2025-era SDK app.

Every POST /mcp is self-contained: no initialize, no session. A request names its
revision twice, in the MCP-Protocol-Version header and in params._meta, and its
method (and tool/prompt name or resource uri) in Mcp-Method / Mcp-Name; the two
must agree or the request is refused (400, HeaderMismatch). Requests that need
something from the client answer an InputRequiredResult (MRTR) whose requestState
is HMAC-sealed, so a client cannot forge or edit it. Notifications of a request
(progress, logs at the requested _meta logLevel) ride on an SSE response; those of
no request ride on a subscriptions/listen stream, which lives a few seconds.

Bounded on purpose: body size, listen-stream lifetime and count, state age.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

PROTOCOL_VERSION = "2026-07-28"
SUPPORTED_VERSIONS = [PROTOCOL_VERSION]

META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION = "io.modelcontextprotocol/subscriptionId"

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
HEADER_MISMATCH, MISSING_CLIENT_CAPABILITY, UNSUPPORTED_VERSION = -32020, -32021, -32022
# The transport maps protocol errors to HTTP statuses; other errors ride on a 200.
HTTP_STATUS = {
    PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, METHOD_NOT_FOUND: 404, INTERNAL_ERROR: 500,
    HEADER_MISMATCH: 400, MISSING_CLIENT_CAPABILITY: 400, UNSUPPORTED_VERSION: 400,
}

MAX_BODY_BYTES = 1 << 20
LISTEN_SECONDS = 5.0
MAX_LISTENERS = 32
STATE_SECONDS = 600
LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
# Which client capability each kind of input request needs.
INPUT_CAPABILITY = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}
# Results a client may cache (SEP-2549).
CACHEABLE = {"server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"}
# Mcp-Name mirrors this body field, per method.
NAMED_BY = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}


class RpcError(Exception):
    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def loopback_only(headers) -> bool:
    """DNS-rebinding protection: a page on evil.example that resolves to 127.0.0.1
    still sends its own name as Host/Origin."""
    allowed = {h.strip("[]") for h in LOOPBACK}
    try:
        if urlsplit(f"//{headers.get('host', '')}").hostname not in allowed:
            return False
        origin = headers.get("origin")
        return origin is None or urlsplit(origin).hostname in allowed
    except ValueError:  # a malformed Host or Origin
        return False


class Sealer:
    """requestState is the server's memory between MRTR rounds, held by the client:
    HMAC-signed with a per-process key, bound to the method and name it was issued
    for, and short-lived."""

    def __init__(self):
        self.key = os.urandom(32)

    def seal(self, bound_to, data) -> str:
        payload = _b64(json.dumps({"for": bound_to, "exp": int(time.time()) + STATE_SECONDS, "data": data}).encode())
        return f"{payload}.{_b64(self._mac(payload))}"

    def open(self, bound_to, token):
        try:
            payload, _, mac = token.rpartition(".")
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                raise ValueError
            state = json.loads(_unb64(payload))
            if state["for"] != bound_to or state["exp"] < time.time():
                raise ValueError
            return state["data"]
        except Exception:
            raise RpcError(INVALID_PARAMS, "requestState failed its integrity check") from None

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Call:
    """One request as a handler sees it: arguments, what the client declared, the
    answers to earlier input requests, and outlets for its notifications."""

    method: str
    params: dict
    bound_to: str
    sealer: Sealer
    outbox: asyncio.Queue | None = None
    arguments: dict = field(default_factory=dict)

    def __post_init__(self):
        meta = self.params["_meta"]
        self.capabilities = meta[META_CAPABILITIES]
        self.log_level = meta.get(META_LOG_LEVEL)
        self.progress_token = meta.get("progressToken")
        responses = self.params.get("inputResponses")
        if "inputResponses" in self.params and not isinstance(responses, dict):
            raise RpcError(INVALID_PARAMS, "inputResponses must be an object")
        self.input_responses = responses or {}
        token = self.params.get("requestState")
        if token is not None and not isinstance(token, str):
            raise RpcError(INVALID_PARAMS, "requestState must be a string")
        self.state = self.sealer.open(self.bound_to, token) if token is not None else None

    def require(self, capability):
        if not isinstance(self.capabilities.get(capability), dict):
            raise RpcError(MISSING_CLIENT_CAPABILITY, f"this request needs the client capability '{capability}'",
                           {"requiredCapabilities": {capability: {}}})

    def answer(self, key, method):
        """The client's answer to input request `key`, checked against the shape
        its method returns; None when not answered yet."""
        if key not in self.input_responses:
            return None
        value = self.input_responses[key]
        valid = isinstance(value, dict) and {
            "elicitation/create": lambda v: v.get("action") in ("accept", "decline", "cancel")
                                            and isinstance(v.get("content", {}), dict),
            "sampling/createMessage": lambda v: v.get("role") in ("user", "assistant") and "content" in v,
            "roots/list": lambda v: isinstance(v.get("roots"), list),
        }[method](value)
        if not valid:
            raise RpcError(INVALID_PARAMS, f"inputResponses['{key}'] is not a valid {method} result")
        return value

    def ask(self, requests: dict, state=None) -> dict:
        """An InputRequiredResult; refuses what the client cannot answer."""
        for request in requests.values():
            self.require(INPUT_CAPABILITY[request["method"]])
        result = {"resultType": "input_required", "inputRequests": requests}
        if state is not None:
            result["requestState"] = self.sealer.seal(self.bound_to, state)
        return result

    async def log(self, level, data):
        if self.outbox is None or self.log_level not in LOG_LEVELS:
            return
        if LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.log_level):
            await self.outbox.put(notification("notifications/message", {"level": level, "data": data}))

    async def progress(self, progress, total=None, message=None):
        if self.outbox is None or self.progress_token is None:
            return
        params = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.outbox.put(notification("notifications/progress", params))


Handler = Callable[[Call], Awaitable[dict]]


def notification(method, params=None):
    message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def sse(message) -> bytes:
    return f"event: message\ndata: {json.dumps(message)}\n\n".encode()


class StatelessServer:
    """Tools, resources and prompts registered by the fixture, served on the
    2026-07-28 wire. `refuse_legacy` answers a 2025 initialize the way a
    2026-only server does: UnsupportedProtocolVersion with the versions it has."""

    def __init__(self, name, version, refuse_legacy=False):
        self.server_info = {"name": name, "version": version}
        self.refuse_legacy = refuse_legacy
        self.sealer = Sealer()
        self.tools: dict[str, tuple[dict, Handler]] = {}
        self.resources: dict[str, tuple[dict, Callable[[], dict]]] = {}
        self.templates: list[tuple[dict, Callable[[str], dict | None]]] = []
        self.prompts: dict[str, tuple[dict, Handler]] = {}
        self.completer: Callable[[dict, dict], list[str]] = lambda ref, argument: []
        self.listeners: list[tuple[dict, asyncio.Queue]] = []
        self.capabilities = {
            "tools": {"listChanged": True},
            "prompts": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": False},
            "completions": {},
            "logging": {},
        }

    # Registration.

    def check_param_mirrors(self, headers, params):
        """SEP-2243: every argument whose schema names an `x-mcp-header` is
        mirrored in `Mcp-Param-<name>`, plain or `=?base64?...?=`."""
        tool = self.tools.get(params.get("name"))
        arguments = params.get("arguments")
        if tool is None or not isinstance(arguments, dict):
            return
        for prop, schema in tool[0]["inputSchema"].get("properties", {}).items():
            mirror = schema.get("x-mcp-header") if isinstance(schema, dict) else None
            if mirror is None or prop not in arguments:
                continue
            value = arguments[prop]
            expected = ("true" if value else "false") if isinstance(value, bool) else str(value)
            sent = headers.get(f"mcp-param-{mirror}")
            if sent is None:
                raise RpcError(HEADER_MISMATCH, f"Mcp-Param-{mirror} header is missing")
            sent = sent.strip()
            if sent.startswith("=?base64?") and sent.endswith("?="):
                try:
                    sent = base64.b64decode(sent[9:-2], validate=True).decode()
                except (ValueError, UnicodeDecodeError):
                    raise RpcError(HEADER_MISMATCH, f"Mcp-Param-{mirror} is not valid base64")
            if sent != expected:
                raise RpcError(HEADER_MISMATCH, f"Mcp-Param-{mirror} header does not match arguments.{prop}")

    def tool(self, name, description, input_schema=None):
        def register(handler: Handler):
            self.tools[name] = ({"name": name, "description": description,
                                 "inputSchema": input_schema or {"type": "object", "properties": {}}}, handler)
            return handler
        return register

    def resource(self, uri, name, mime_type, description, read: Callable[[], dict]):
        self.resources[uri] = ({"uri": uri, "name": name, "description": description, "mimeType": mime_type}, read)

    def template(self, uri_template, name, mime_type, description, read: Callable[[str], dict | None]):
        """`read` answers the contents for a uri it recognises, None otherwise."""
        self.templates.append(({"uriTemplate": uri_template, "name": name, "description": description,
                                "mimeType": mime_type}, read))

    def prompt(self, name, description, arguments=()):
        def register(handler: Handler):
            self.prompts[name] = ({"name": name, "description": description,
                                   "arguments": [dict(a) for a in arguments]}, handler)
            return handler
        return register

    async def publish(self, kind, uri=None):
        """Tell every listen stream that asked for `kind` (toolsListChanged,
        promptsListChanged, or resourceSubscriptions for `uri`)."""
        method = {"toolsListChanged": "notifications/tools/list_changed",
                  "promptsListChanged": "notifications/prompts/list_changed",
                  "resourcesListChanged": "notifications/resources/list_changed",
                  "resourceSubscriptions": "notifications/resources/updated"}[kind]
        for honoured, queue in list(self.listeners):
            wanted = uri in honoured.get(kind, []) if kind == "resourceSubscriptions" else honoured.get(kind)
            if wanted and not queue.full():  # a listener that does not read loses news, not memory
                queue.put_nowait(notification(method, {"uri": uri} if uri else {}))

    # The wire.

    async def __call__(self, scope, receive, send):
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        if not loopback_only(request.headers):
            return JSONResponse({"jsonrpc": "2.0", "id": None,
                                 "error": {"code": INVALID_REQUEST, "message": "Host/Origin is not loopback"}},
                                status_code=403)
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "POST"})
        try:
            body = await read_body(request)
            message = json.loads(body)
        except RpcError as error:
            return self.error(None, error)
        except ClientDisconnect:
            return Response(status_code=400)
        except (ValueError, RecursionError):
            return self.error(None, RpcError(PARSE_ERROR, "body is not JSON"))
        if not isinstance(message, dict):
            return self.error(None, RpcError(INVALID_REQUEST, "expected one JSON-RPC message (batches are not allowed)"))
        request_id = message.get("id")
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            request_id = None
        try:
            return await self.dispatch(request, message, request_id)
        except RpcError as error:
            return self.error(request_id, error)
        except Exception as error:  # a fixture bug must not take the process down
            return self.error(request_id, RpcError(INTERNAL_ERROR, f"internal error: {type(error).__name__}"))

    async def dispatch(self, request: Request, message: dict, request_id) -> Response:
        method = message.get("method")
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str):
            raise RpcError(INVALID_REQUEST, "not a JSON-RPC 2.0 request")
        if "id" not in message:
            return Response(status_code=202)  # a notification; none needs handling here
        if request_id is None:
            raise RpcError(INVALID_REQUEST, "id must be a string or an integer")
        params = message.get("params", {})
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "params must be an object")
        meta = params.get("_meta")
        if method == "initialize" and not isinstance(meta, dict) and self.refuse_legacy:
            requested = params.get("protocolVersion")
            raise RpcError(UNSUPPORTED_VERSION, "this server speaks only the stateless revision",
                           {"supported": SUPPORTED_VERSIONS,
                            "requested": requested if isinstance(requested, str) else str(requested)})

        header_version = request.headers.get("mcp-protocol-version")
        if header_version is None:
            raise RpcError(HEADER_MISMATCH, "missing MCP-Protocol-Version header")
        header_version = header_version.strip()
        if not isinstance(meta, dict):
            raise RpcError(INVALID_PARAMS, "params._meta is required")
        missing = [key for key in (META_VERSION, META_CAPABILITIES) if key not in meta]
        if missing:
            raise RpcError(INVALID_PARAMS, f"params._meta lacks {', '.join(missing)}")
        if not isinstance(meta[META_CAPABILITIES], dict):
            raise RpcError(INVALID_PARAMS, f"{META_CAPABILITIES} must be an object")
        if meta[META_VERSION] != header_version:
            raise RpcError(HEADER_MISMATCH, "MCP-Protocol-Version header does not match _meta protocolVersion")
        if header_version not in SUPPORTED_VERSIONS:
            raise RpcError(UNSUPPORTED_VERSION, "unsupported protocol version",
                           {"supported": SUPPORTED_VERSIONS, "requested": header_version})
        method_header = request.headers.get("mcp-method")
        if method_header is None or method_header.strip() != method:
            raise RpcError(HEADER_MISMATCH, "Mcp-Method header does not match the body method")
        if method in NAMED_BY:
            named = params.get(NAMED_BY[method])
            name_header = request.headers.get("mcp-name")
            if not isinstance(named, str):
                raise RpcError(INVALID_PARAMS, f"params.{NAMED_BY[method]} must be a string")
            if name_header is None or name_header.strip() != named:
                raise RpcError(HEADER_MISMATCH, f"Mcp-Name header does not match params.{NAMED_BY[method]}")
        if method == "tools/call":
            self.check_param_mirrors(request.headers, params)
        level = meta.get(META_LOG_LEVEL)
        if level is not None and level not in LOG_LEVELS:
            raise RpcError(INVALID_PARAMS, f"{META_LOG_LEVEL} must be one of {', '.join(LOG_LEVELS)}")

        accepts_sse = "text/event-stream" in request.headers.get("accept", "")
        if method == "subscriptions/listen":
            return self.listen(request_id, params)
        handler = {
            "server/discover": self.discover,
            "tools/list": lambda call: self.listing("tools", [t for t, _ in self.tools.values()]),
            "prompts/list": lambda call: self.listing("prompts", [p for p, _ in self.prompts.values()]),
            "resources/list": lambda call: self.listing("resources", [r for r, _ in self.resources.values()]),
            "resources/templates/list": lambda call: self.listing("resourceTemplates", [t for t, _ in self.templates]),
            "resources/read": self.read,
            "tools/call": self.call_tool,
            "prompts/get": self.get_prompt,
            "completion/complete": self.complete,
        }.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"method not found: {method}")
        bound_to = f"{method} {params.get(NAMED_BY.get(method, ''), '')}"
        streams = accepts_sse and (meta.get("progressToken") is not None or level is not None)
        call = Call(method, params, bound_to, self.sealer, asyncio.Queue() if streams else None)
        if not streams:
            return self.result(request_id, method, await handler(call))
        return StreamingResponse(self.stream(request_id, method, handler, call), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def stream(self, request_id, method, handler, call: Call):
        """The request's notifications as they come, then its response."""
        task = asyncio.ensure_future(handler(call))
        getter = None
        try:
            while True:
                getter = asyncio.ensure_future(call.outbox.get())
                done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield sse(getter.result())
                    continue
                getter.cancel()
                while not call.outbox.empty():
                    yield sse(call.outbox.get_nowait())
                break
            try:
                yield sse(self.envelope(request_id, method, task.result()))
            except RpcError as error:
                yield sse(self.error_message(request_id, error))
            except Exception as error:
                yield sse(self.error_message(request_id, RpcError(INTERNAL_ERROR, f"internal error: {type(error).__name__}")))
        finally:  # the client may leave mid-stream
            task.cancel()
            if getter is not None:
                getter.cancel()

    def listen(self, request_id, params) -> Response:
        wanted = params.get("notifications")
        if not isinstance(wanted, dict):
            raise RpcError(INVALID_PARAMS, "params.notifications must be an object")
        if len(self.listeners) >= MAX_LISTENERS:
            raise RpcError(INTERNAL_ERROR, "too many open subscriptions")
        supported = {
            "toolsListChanged": self.capabilities["tools"].get("listChanged"),
            "promptsListChanged": self.capabilities["prompts"].get("listChanged"),
            "resourcesListChanged": self.capabilities["resources"].get("listChanged"),
        }
        honoured = {kind: True for kind, ok in supported.items() if ok and wanted.get(kind) is True}
        uris = wanted.get("resourceSubscriptions")
        if self.capabilities["resources"].get("subscribe") and isinstance(uris, list):
            honoured["resourceSubscriptions"] = [u for u in uris if isinstance(u, str)][:100]
        tag = {META_SUBSCRIPTION: request_id}

        async def events():
            queue: asyncio.Queue = asyncio.Queue(maxsize=256)
            listener = (honoured, queue)
            self.listeners.append(listener)
            try:
                yield sse(notification("notifications/subscriptions/acknowledged",
                                       {"notifications": honoured, "_meta": tag}))
                deadline = asyncio.get_running_loop().time() + LISTEN_SECONDS
                while (left := deadline - asyncio.get_running_loop().time()) > 0:
                    try:
                        message = await asyncio.wait_for(queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                    message.setdefault("params", {}).setdefault("_meta", {}).update(tag)
                    yield sse(message)
                yield sse(self.envelope(request_id, "subscriptions/listen", {"resultType": "complete", "_meta": dict(tag)}))
            finally:
                self.listeners.remove(listener)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    # Methods.

    async def discover(self, call: Call) -> dict:
        return {"supportedVersions": SUPPORTED_VERSIONS, "capabilities": self.capabilities,
                "instructions": "The Portcullis conformance fixture, stateless wire."}

    async def listing(self, key, items) -> dict:
        return {key: items}

    async def read(self, call: Call) -> dict:
        uri = call.params["uri"]
        if uri in self.resources:
            return {"contents": [self.resources[uri][1]()]}
        for _, read in self.templates:
            contents = read(uri)
            if contents is not None:
                return {"contents": [contents]}
        raise RpcError(INVALID_PARAMS, "Resource not found", {"uri": uri})

    async def call_tool(self, call: Call) -> dict:
        name = call.params["name"]
        if name not in self.tools:
            raise RpcError(INVALID_PARAMS, f"unknown tool: {name}")
        arguments = call.params.get("arguments", {})
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "arguments must be an object")
        call.arguments = arguments
        return await self.tools[name][1](call)

    async def get_prompt(self, call: Call) -> dict:
        name = call.params["name"]
        if name not in self.prompts:
            raise RpcError(INVALID_PARAMS, f"unknown prompt: {name}")
        definition, handler = self.prompts[name]
        arguments = call.params.get("arguments", {})
        if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
            raise RpcError(INVALID_PARAMS, "prompt arguments must be an object of strings")
        missing = [a["name"] for a in definition["arguments"] if a.get("required") and a["name"] not in arguments]
        if missing:
            raise RpcError(INVALID_PARAMS, f"missing prompt arguments: {', '.join(missing)}")
        call.arguments = arguments
        return await handler(call)

    async def complete(self, call: Call) -> dict:
        ref, argument = call.params.get("ref"), call.params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict) or not isinstance(argument.get("value"), str):
            raise RpcError(INVALID_PARAMS, "completion/complete needs ref and argument.value")
        values = self.completer(ref, argument)[:100]
        return {"completion": {"values": values, "total": len(values), "hasMore": False}}

    # Envelopes.

    def envelope(self, request_id, method, result: dict) -> dict:
        result = dict(result)
        result.setdefault("resultType", "complete")
        if method in CACHEABLE and result["resultType"] == "complete":
            result.setdefault("ttlMs", 60_000)
            result.setdefault("cacheScope", "public")
        result.setdefault("_meta", {})[META_SERVER_INFO] = self.server_info
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def result(self, request_id, method, result) -> Response:
        return JSONResponse(self.envelope(request_id, method, result))

    def error_message(self, request_id, error: RpcError) -> dict:
        body = {"code": error.code, "message": error.message}
        if error.data is not None:
            body["data"] = error.data
        return {"jsonrpc": "2.0", "id": request_id, "error": body}

    def error(self, request_id, error: RpcError) -> Response:
        return JSONResponse(self.error_message(request_id, error), status_code=HTTP_STATUS.get(error.code, 200))


async def read_body(request: Request) -> bytes:
    """The body, refusing more than MAX_BODY_BYTES without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RpcError(INVALID_REQUEST, "body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RpcError(INVALID_REQUEST, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)
