"""Agent B (another process or device) opens the same name and resumes (the seed's example)."""

import asyncio
import os

from moss import DocumentInfo, MossClient, QueryOptions

MOSS_PROJECT_ID = os.environ.get("MOSS_PROJECT_ID")
MOSS_PROJECT_KEY = os.environ.get("MOSS_PROJECT_KEY")


async def main() -> None:
    client = MossClient(MOSS_PROJECT_ID, MOSS_PROJECT_KEY)

    session = await client.session(index_name="conv-123")
    print(f"{session.doc_count} documents loaded")

    results = await session.query("status of the refund", QueryOptions(top_k=3))
    for doc in results.docs:
        print(f"{doc.id} score={doc.score:.3f} {doc.text}")

    await session.add_docs(
        [
            DocumentInfo(
                id="turn-3", text="Customer confirmed the refund posted to their statement."
            ),
        ]
    )
    result = await session.push_index()
    print(f"agent B pushed {result.doc_count} documents as version {result.version}")


if __name__ == "__main__":
    asyncio.run(main())
