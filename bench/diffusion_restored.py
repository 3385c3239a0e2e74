"""Per-image view of the Finding Dori table: which images replicated, which a mitigation stopped,
which DoRI restored.

    .venv/bin/python bench/diffusion_restored.py            # runs (or resumes) bench/diffusion_table.py with its defaults first
    .venv/bin/python bench/diffusion_restored.py --smoke    # the same on the table's smoke configuration

The view is the table's "restored" section (bench/diffusion_table.py computes it from the run
folders); this script prints it one image per line and writes it to <table json>_restored.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import diffusion_table  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    table = diffusion_table.main(argv)  # every stage is a resumable run folder: instant when the table has run
    rows = [{"method": m, **r} for m, v in table["restored"].items() for r in v["rows"]]
    summary = {m: {k: x for k, x in v.items() if k != "rows"} for m, v in table["restored"].items()}
    out_json = Path(diffusion_table.SMOKE[diffusion_table.SMOKE.index("--json") + 1]) if "--smoke" in argv else Path("bench/results/diffusion_final.json")
    if "--json" in argv:
        out_json = Path(argv[argv.index("--json") + 1])
    out_json.with_name(out_json.stem + "_restored.json").write_text(json.dumps({"summary": summary, "rows": rows, "threshold": table["threshold"]}, indent=1))
    print(json.dumps(summary, indent=1))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
