"""Agent A accumulates context, then pushes (the seed's example, as written)."""

import asyncio
import os

from moss import DocumentInfo, MossClient

MOSS_PROJECT_ID = os.environ.get("MOSS_PROJECT_ID")
MOSS_PROJECT_KEY = os.environ.get("MOSS_PROJECT_KEY")


async def main() -> None:
    client = MossClient(MOSS_PROJECT_ID, MOSS_PROJECT_KEY)

    session = await client.session(index_name="conv-123")
    await session.add_docs(
        [
            DocumentInfo(id="turn-1", text="Customer reported a duplicate $49.99 charge."),
            DocumentInfo(id="turn-2", text="Agent confirmed a refund in 3-5 business days."),
        ]
    )
    result = await session.push_index()
    print(f"agent A pushed {result.doc_count} documents as version {result.version}")


if __name__ == "__main__":
    asyncio.run(main())
