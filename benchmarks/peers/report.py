"""Tables of the results: figures per size and peer, then each peer's ratio to moss."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    ("add s", "add_s", "{:.2f}"),
    ("persist s", "persist_s", "{:.2f}"),
    ("open s", "open_s", "{:.3f}"),
    ("1st q ms", "first_query_ms", "{:.1f}"),
    ("p50 ms", "query_p50_ms", "{:.2f}"),
    ("p99 ms", "query_p99_ms", "{:.2f}"),
    ("32q ms", "batch_ms", "{:.1f}"),
    ("filt ms", "filtered_p50_ms", "{:.2f}"),
    ("filt 1st ms", "filtered_first_ms", "{:.1f}"),
    ("recall", "recall_at_10", "{:.2f}"),
    ("f.recall", "filtered_recall_at_10", "{:.2f}"),
    ("open MB", "memory_after_open_mb", "{:.0f}"),
    ("peak MB", "peak_rss_mb", "{:.0f}"),
    ("disk MB", "size_bytes", "{:.0f}"),
)
RATIOS = (
    ("open", "open_s"),
    ("p50", "query_p50_ms"),
    ("32q", "batch_ms"),
    ("filtered", "filtered_p50_ms"),
    ("peak RSS", "peak_rss_mb"),
    ("disk", "size_bytes"),
)


def cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if key == "size_bytes":
        value = value / 1e6
    return fmt.format(value)


def print_tables(rows: list[dict[str, Any]]) -> None:
    print("\n" + markdown_table(rows))
    print("\nratio to moss (x: the peer's figure / moss's; above 1, moss is faster or smaller)")
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_size.setdefault(row["n"], {})[row["peer"]] = row
    for n, peers in sorted(by_size.items()):
        base = peers.get("moss")
        if base is None:
            continue
        for peer, row in peers.items():
            if peer == "moss":
                continue
            parts = []
            for label, key in RATIOS:
                if row.get(key) and base.get(key):
                    parts.append(f"{label} x{row[key] / base[key]:.2f}")
            print(f"  n={n:>8,} {peer:>20}: " + "  ".join(parts))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The vector benchmark as a Markdown table (the README's)."""
    head = "| N | peer | " + " | ".join(label for label, _, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for row in sorted(rows, key=lambda r: (r["n"], r["peer"] != "moss", r["peer"])):
        cells = [cell(row, key, fmt) for _, key, fmt in COLUMNS]
        lines.append(f"| {row['n']:,} | {row['peer']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_text_table(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| peer | glosses | ingest docs/s | persist s | open s | 1st query ms | text query p50 ms | recall vs moss | disk MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['peer']} | {row['n']:,} | {row['docs_per_s']:.0f} | {row['persist_s']:.2f} | "
            f"{row['open_s']:.3f} | {row['first_query_ms']:.1f} | {row['text_query_p50_ms']:.2f} | "
            f"{row.get('recall_vs_moss', float('nan')):.2f} | {row['size_bytes'] / 1e6:.1f} |"
        )
