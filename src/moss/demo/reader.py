"""A third process checks what the hand-off left in the store."""

import asyncio
import os

from moss import MossClient


async def main() -> None:
    client = MossClient(os.environ.get("MOSS_PROJECT_ID"), os.environ.get("MOSS_PROJECT_KEY"))
    session = await client.session(index_name="conv-123")
    ids = sorted(doc.id for doc in await session.get_docs())
    print(
        f"reader sees version {session.version} with {session.doc_count} documents: {', '.join(ids)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
