"""A tiny A2A agent built with the a2a-sdk server app: it answers every message
with "echo: <the text>"; a text starting with "task:" makes a task instead
(submitted, working, completed with an "echo: ..." artifact). `--skills` names the skills its card lists (a refresh
test restarts it with other skills). `--require-header name=value` makes its
JSON-RPC endpoint answer 401 unless that header has that value and no
`authorization` header with a Portcullis key came along (credential injection)."""

import argparse

import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentSkill, Part, TextPart
from a2a.utils import new_agent_text_message, new_task


class EchoExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        if not text.startswith("task:"):
            await event_queue.enqueue_event(new_agent_text_message(f"echo: {text}"))
            return
        task = context.current_task or new_task(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        await updater.add_artifact([Part(root=TextPart(text=f"echo: {text}"))])
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError("cancel")


class RequireHeader:
    """ASGI middleware: POSTs need `name: value` and no Portcullis key."""

    def __init__(self, app, name, value):
        self.app, self.name, self.value = app, name, value

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope["headers"])
            leaked = b"pcx_" in headers.get(b"authorization", b"") + headers.get(b"x-api-key", b"")
            if headers.get(self.name) != self.value or leaked:
                await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "agent credential missing or caller key leaked"}'})
                return
        await self.app(scope, receive, send)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--skills", default="echo")
    ap.add_argument("--require-header", default=None)
    args = ap.parse_args()
    skills = [
        AgentSkill(id=s, name=s.title(), description=f"{s} skill", tags=[s], examples=[])
        for s in args.skills.split(",")
    ]
    card = AgentCard(
        name="Echo Agent",
        description="Echoes what it is told",
        url=f"http://127.0.0.1:{args.port}/",
        version="1.0.0",
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        capabilities=AgentCapabilities(streaming=True),
        skills=skills,
    )
    handler = DefaultRequestHandler(agent_executor=EchoExecutor(), task_store=InMemoryTaskStore())
    app = A2AStarletteApplication(agent_card=card, http_handler=handler).build()
    if args.require_header:
        name, value = args.require_header.split("=", 1)
        app = RequireHeader(app, name.lower().encode(), value.encode())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
