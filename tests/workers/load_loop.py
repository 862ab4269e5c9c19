"""Worker: open an index in a loop until told to stop; print one line per complete load."""

from __future__ import annotations

import os
import sys

from check_load import assert_complete

from moss import IndexNotFoundError, MossClient


def main() -> None:
    store, name, dim, stop_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    client = MossClient("proj", store=store)
    loads = 0
    while not os.path.exists(stop_file):
        try:
            session = client.sync.session(name)
        except IndexNotFoundError:
            continue
        if session.doc_count:
            assert_complete(session, dim)
            loads += 1
    print(f"loads {loads}", flush=True)


if __name__ == "__main__":
    main()
