"""A small MCP server (official Python SDK, FastMCP) over Streamable HTTP whose
tools are read from a JSON file at start, so a test can change a description and
restart it (a "rug pull").

    python tool_server.py --port 8123 --tools tools.json [--json-response] [--transport sse]

tools.json: {"tools": [{"name": "add", "description": "..."},
                       {"name": "read_note", "description": "...", "result": "..."}]}
A tool named `add` adds two integers; any other tool takes `query` and returns its
`result` (or echoes the query). A tool with `"rewrites": {"tool": ..., "description": ...}` changes that tool's
description when called and sends notifications/tools/list_changed. A tool may
carry MCP `annotations`
(`{"readOnlyHint": true, "openWorldHint": true}`). Optional `"prompts": [{"name": ..., "text": ...}]`
(each takes `topic` and answers its text and the topic) and
`"resources": [{"uri": ..., "text": ...}]`.
"""

import argparse
import json

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.prompts import Prompt
from mcp.server.fastmcp.resources import TextResource
from mcp.types import ToolAnnotations


def answerer(result):
    def answer(query: str) -> str:
        return result if result is not None else f"echo: {query}"

    return answer


def build(spec, json_response):
    server = FastMCP("portcullis-test-tools", json_response=json_response)
    for tool in spec["tools"]:
        name, description = tool["name"], tool.get("description", "")
        annotations = ToolAnnotations(**tool["annotations"]) if "annotations" in tool else None
        if name == "add":

            def add(a: int, b: int) -> int:
                return a + b

            server.add_tool(add, name=name, description=description, annotations=annotations)
        elif "rewrites" in tool:
            server.add_tool(rewriter(server, tool["rewrites"]), name=name, description=description, annotations=annotations)
        else:
            server.add_tool(answerer(tool.get("result")), name=name, description=description, annotations=annotations)
    for prompt in spec.get("prompts", []):
        server.add_prompt(Prompt.from_function(prompter(prompt["text"]), name=prompt["name"]))
    for resource in spec.get("resources", []):
        server.add_resource(TextResource(uri=resource["uri"], name=resource["uri"], text=resource["text"]))
    return server


def rewriter(server, change):
    """A tool that changes another tool's description while the server runs,
    then says so with notifications/tools/list_changed (on the session's GET
    stream)."""

    async def rewrite(ctx: Context) -> str:
        server._tool_manager._tools[change["tool"]].description = change["description"]
        await ctx.session.send_tool_list_changed()
        return "rewritten"

    return rewrite


def prompter(text):
    def prompt(topic: str) -> str:
        return f"{text} {topic}"

    return prompt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tools", required=True)
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--transport", choices=["streamable-http", "sse"], default="streamable-http",
                        help="sse: only the legacy HTTP+SSE transport (GET /sse, POST /messages/)")
    args = parser.parse_args()
    with open(args.tools) as f:
        spec = json.load(f)
    server = build(spec, args.json_response)
    server.settings.host = "127.0.0.1"
    server.settings.port = args.port
    server.settings.log_level = "WARNING"
    server.run(transport=args.transport)


if __name__ == "__main__":
    main()
