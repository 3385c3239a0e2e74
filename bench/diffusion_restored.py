"""Per-image view of the table: which images replicated, which a mitigation stopped, which DoRI restored.

    .venv/bin/python bench/diffusion_restored.py      # after bench/diffusion_table.py (bench/diffusion_table.py also writes this view under "restored")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rotelab.diffusion.replication import per_prompt_rates

OUT = Path("bench/results/diffusion_final")


def per_image(name: str, key: str, tau: float = 0.7) -> dict[str, float]:
    d = json.loads((OUT / name / f"{key}.json").read_text())
    return dict(zip(d["ids"], per_prompt_rates(np.array(d["sims"]), tau).tolist()))


def main() -> None:
    before = per_image("nemo", "before")
    rows, summary = [], {}
    for method in ("nemo", "wanda", "adversarial"):
        after = per_image(method, "after")
        dori = json.loads((OUT / f"{method}_dori" / "result.json").read_text())["per_image"]
        stopped = [i for i in before if before[i] >= 0.5 and after[i] < 0.5]
        summary[method] = {"replicating_before": sum(v >= 0.5 for v in before.values()), "stopped_by_mitigation": len(stopped),
                           "restored_by_dori_among_stopped": sum(dori[i] >= 0.5 for i in stopped), "stopped_ids": stopped}
        rows += [{"method": method, "id": i, "MR_before": before[i], "MR_mitigated": after[i], "MR_mitigated+DoRI": dori[i]} for i in before]
    out = {"summary": summary, "rows": rows, "threshold": 0.7}
    Path("bench/results/diffusion_final_restored.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
