"""A small MCP server (official Python SDK, FastMCP) over stdio, started by the
gateway from an MCP proxy's `upstream_command`.

    python stdio_server.py

Tools: `add` (two integers; its description is read from the file named by
ADD_DESCRIPTION_FILE when set), `greet` (returns the GREETING environment variable),
`crash` (the process exits at once with code 1, without answering). It writes a
line to stderr at start and on each call, for the gateway's logs.
"""

import os
import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("portcullis-stdio-tools")


def note(text):
    print(f"stdio-test-server: {text}", file=sys.stderr, flush=True)


def add(a: int, b: int) -> int:
    note(f"add {a} {b}")
    return a + b


# The description can come from a file, read at start: a test changes it and
# restarts the process (a rug pull by restart).
_described = os.environ.get("ADD_DESCRIPTION_FILE")
server.add_tool(add, name="add", description=open(_described).read() if _described else "Adds two integers and returns the sum.")


@server.tool(description="Returns the greeting configured for this server.")
def greet() -> str:
    return os.environ.get("GREETING", "no greeting")


@server.tool(description="Stops the server process at once.")
def crash() -> str:
    note("crashing on purpose")
    os._exit(1)


if __name__ == "__main__":
    note(f"started pid {os.getpid()}")
    server.run(transport="stdio")
