"""`moss mcp`: the SDK's MCP client drives real `moss mcp` subprocesses (stdio and HTTP)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from pydantic import AnyUrl

from service import free_port, moss_command

pytestmark = pytest.mark.timeout(180)

TOOLS = {"search", "remember", "add", "get", "forget", "list_indexes", "versions"}


@asynccontextmanager
async def mcp_server(store: str, *args: str) -> AsyncIterator[ClientSession]:
    """A `moss mcp` subprocess over stdio, and an initialized client session to it."""
    command, *rest = moss_command("mcp", "--store", store, *args)
    params = StdioServerParameters(command=command, args=rest, env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await session.call_tool(tool, arguments)
    assert not result.isError, error_text(result)
    assert result.structuredContent is not None
    return result.structuredContent


async def fails(session: ClientSession, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail with a tool error; the error's text."""
    result = await session.call_tool(tool, arguments)
    assert result.isError, result.structuredContent
    return error_text(result)


def error_text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture
def store(tmp_path: Path) -> str:
    return (tmp_path / "store").as_uri()


async def test_tools_have_schemas_and_descriptions(store: str) -> None:
    async with mcp_server(store) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40, tool.name
    search = tools["search"].inputSchema
    assert set(search["required"]) == {"index", "query"}
    top_k = search["properties"]["top_k"]
    assert (top_k["minimum"], top_k["maximum"], top_k["default"]) == (1, 100, 5)
    assert "$contains" in search["properties"]["filter"]["description"]
    document = tools["add"].inputSchema["$defs"]["Document"]
    assert set(document["required"]) == {"id", "text"}
    assert set(tools["forget"].inputSchema["properties"]) == {"index", "ids", "filter"}


async def test_every_tool_and_resource(store: str) -> None:
    async with mcp_server(store) as session:
        stored = await call(
            session,
            "remember",
            index="conv-1",
            texts=["The refund for order 1234 was issued on May 3.", "The customer likes email."],
            metadata={"topic": "billing"},
        )
        assert (stored["added"], stored["version"], stored["doc_count"]) == (2, 1, 2)
        assert all(doc_id.startswith("mem-") for doc_id in stored["ids"])
        added = await call(
            session,
            "add",
            index="conv-1",
            documents=[
                {"id": "ship-1", "text": "Parcels ship within two days.", "metadata": {"n": 1}},
                {"id": "ship-2", "text": "Express delivery costs extra."},
            ],
        )
        assert (added["added"], added["version"], added["doc_count"]) == (2, 2, 4)

        found = await call(session, "search", index="conv-1", query="when was the money returned")
        assert found["results"][0]["id"] == stored["ids"][0]
        assert found["results"][0]["metadata"] == {"topic": "billing"}
        assert found["version"] == 2
        only = await call(
            session, "search", index="conv-1", query="delivery", filter={"n": 1}, alpha=1.0
        )
        assert [doc["id"] for doc in only["results"]] == ["ship-1"]

        got = await call(session, "get", index="conv-1", ids=["ship-2", "nope"])
        assert [doc["text"] for doc in got["documents"]] == ["Express delivery costs extra."]
        assert got["missing"] == ["nope"]

        forgot = await call(session, "forget", index="conv-1", ids=["ship-2"])
        assert (forgot["deleted"], forgot["version"], forgot["doc_count"]) == (1, 3, 3)
        forgot = await call(session, "forget", index="conv-1", filter={"topic": "billing"})
        assert (forgot["deleted"], forgot["doc_count"]) == (2, 1)

        listed = await call(session, "list_indexes")
        assert [(i["name"], i["doc_count"], i["version"]) for i in listed["indexes"]] == [
            ("conv-1", 1, 4)
        ]
        assert listed["indexes"][0]["model_id"] == "moss-minilm"
        history = await call(session, "versions", index="conv-1")
        assert [v["doc_count"] for v in history["versions"]] == [2, 4, 3, 1]

        templates = (await session.list_resource_templates()).resourceTemplates
        assert [t.uriTemplate for t in templates] == ["moss://index/{name}"]
        read = await session.read_resource(AnyUrl("moss://index/conv-1"))
        summary = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert (summary["name"], summary["doc_count"], summary["version"]) == ("conv-1", 1, 4)


async def test_errors_are_tool_errors_and_the_server_survives(store: str) -> None:
    async with mcp_server(store) as session:
        cases: list[tuple[str, dict[str, Any]]] = [
            ("search", {"query": "x"}),
            ("get", {"ids": ["a"]}),
            ("forget", {"ids": ["a"]}),
            ("versions", {}),
        ]
        for tool, arguments in cases:
            message = await fails(session, tool, index="missing", **arguments)
            assert "index 'missing' does not exist" in message, (tool, message)
        await call(session, "remember", index="conv-1", texts=["hello"])
        assert "top_k" in await fails(session, "search", index="conv-1", query="x", top_k=0)
        assert "query" in await fails(session, "search", index="conv-1")
        assert "texts" in await fails(session, "remember", index="conv-1", texts="not a list")
        both = await fails(session, "forget", index="conv-1", ids=["a"], filter={"a": 1})
        assert "exactly one of ids or filter" in both
        assert "$bogus" in await fails(
            session, "search", index="conv-1", query="x", filter={"a": {"$bogus": 1}}
        )
        assert "name" in await fails(session, "remember", index="bad name!", texts=["x"])
        # A failed write leaves nothing behind to ride along with the next one.
        await fails(session, "add", index="conv-1", documents=[{"id": "", "text": "x"}])
        assert (await call(session, "remember", index="conv-1", texts=["b"]))["doc_count"] == 2
        found = await call(session, "search", index="conv-1", query="hello")
        assert found["results"][0]["text"] == "hello"
        with pytest.raises(Exception, match="missing"):
            await session.read_resource(AnyUrl("moss://index/missing"))
        assert (await call(session, "list_indexes"))["indexes"][0]["name"] == "conv-1"


async def test_an_index_pin_refuses_other_indexes(store: str) -> None:
    async with mcp_server(store) as free:
        await call(free, "remember", index="other", texts=["secret of another agent"])
    async with mcp_server(store, "--index", "conv-123") as pinned:
        tools = {tool.name: tool for tool in (await pinned.list_tools()).tools}
        assert tools["search"].inputSchema["required"] == ["query"]
        stored = await call(pinned, "remember", texts=["pinned memory"])
        assert stored["index"] == "conv-123"
        found = await call(pinned, "search", query="memory")
        assert [doc["text"] for doc in found["results"]] == ["pinned memory"]
        assert (await call(pinned, "get", index="conv-123", ids=stored["ids"]))["documents"]
        refused: list[tuple[str, dict[str, Any]]] = [
            ("search", {"query": "secret"}),
            ("get", {"ids": ["a"]}),
            ("remember", {"texts": ["x"]}),
            ("forget", {"ids": ["a"]}),
            ("versions", {}),
        ]
        for tool, arguments in refused:
            message = await fails(pinned, tool, index="other", **arguments)
            assert "outside this server's scope" in message, (tool, message)
        assert [i["name"] for i in (await call(pinned, "list_indexes"))["indexes"]] == ["conv-123"]
        with pytest.raises(Exception, match="outside"):
            await pinned.read_resource(AnyUrl("moss://index/other"))


async def test_a_prefix_limits_the_reachable_indexes(store: str) -> None:
    async with mcp_server(store, "--prefix", "team-") as scoped:
        await call(scoped, "remember", index="team-a", texts=["a"])
        message = await fails(scoped, "remember", index="solo", texts=["b"])
        assert "must start with 'team-'" in message
        assert [i["name"] for i in (await call(scoped, "list_indexes"))["indexes"]] == ["team-a"]


async def test_two_servers_on_one_store_see_each_others_writes(store: str) -> None:
    async with mcp_server(store) as one, mcp_server(store) as two:
        await call(one, "remember", index="shared", texts=["Alice's flight lands at 9am."])
        found = await call(two, "search", index="shared", query="when does the plane arrive")
        assert found["results"][0]["text"] == "Alice's flight lands at 9am."

        async def writes(session: ClientSession, agent: str) -> None:
            for turn in range(5):
                await call(
                    session,
                    "remember",
                    index="shared",
                    texts=[f"{agent} note {turn}"],
                    ids=[f"{agent}-{turn}"],
                )

        await asyncio.gather(writes(one, "one"), writes(two, "two"))
        # Each server's session is cached now: a read must still see the other's latest push.
        await call(one, "remember", index="shared", texts=["late"], ids=["late"])
        expected = {f"{agent}-{turn}" for agent in ("one", "two") for turn in range(5)}
        for session in (one, two):
            got = await call(session, "get", index="shared", ids=sorted(expected))
            assert got["missing"] == []
            listed = await call(session, "list_indexes")
            assert listed["indexes"][0]["doc_count"] == 12
            assert (await call(session, "get", index="shared", ids=["late"]))["documents"]


def test_an_index_pin_and_a_prefix_together_are_refused(store: str) -> None:
    completed = subprocess.run(
        moss_command("mcp", "--store", store, "--index", "a", "--prefix", "b"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "not both" in completed.stderr


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "moss mcp --http exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"moss mcp --http did not listen on port {port}")


async def test_streamable_http(store: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        moss_command("mcp", "--store", store, "--http", "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}/mcp"
        async with (
            streamable_http_client(url) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
            await call(session, "remember", index="web", texts=["served over HTTP"])
            found = await call(session, "search", index="web", query="http")
            assert found["results"][0]["text"] == "served over HTTP"
            assert "does not exist" in await fails(session, "search", index="nope", query="x")
    finally:
        process.terminate()
        process.wait(timeout=30)
