import sqlite3

import pytest

from rotelab.biomed import sources as S
from rotelab.errors import RotelabError

HPOA = """#description: test
database_id\tdisease_name\tqualifier\thpo_id\treference\tevidence\tonset\tfrequency\tsex\tmodifier\taspect\tbiocuration
OMIM:1\tA\t\tHP:0000002\tPMID:1\tPCS\t\t\t\t\tP\tx
OMIM:1\tA\t\tHP:0000002\tPMID:2\tPCS\t\t\t\t\tP\tx
OMIM:2\tB\t\tHP:0000002\tPMID:3\tPCS\t\t\t\t\tP\tx
OMIM:3\tC\tNOT\tHP:0000002\tPMID:4\tPCS\t\t\t\t\tP\tx
ORPHA:4\tD\t\tHP:0000003\tPMID:5\tPCS\t\t\t\t\tP\tx
"""


def test_hpo_popularity_counts_distinct_diseases_and_skips_not_rows(tmp_path):
    (tmp_path / "phenotype.hpoa").write_text(HPOA)
    assert S.hpo_annotation_counts(tmp_path) == {"HP:0000002": 2, "HP:0000003": 1}


def test_shipped_hpo_extract_loads_offline_with_names_synonyms_and_popularity():
    arms, prov = S.load_hpo(S.extract_paths()["hpo_data"])
    e = {x.key: x for x in arms["hpo"]}
    assert len(e) == 120 and prov["release"] == "hp/releases/2025-01-16"
    club = e["HP:0001776"]
    assert club.term == "Bilateral talipes equinovarus" and club.target == "HP:0001776" and "Bilateral clubfoot" in club.synonyms
    assert club.popularity == 59  # OMIM/ORPHA/DECIPHER diseases annotated to it in the extract's phenotype.hpoa
    assert sum(x.popularity == 0 for x in e.values()) == 30


def test_gene_table_is_parsed_without_running_it(tmp_path):
    arms, prov = S.load_genes(S.extract_paths()["gene_table"], S.extract_paths()["hpo_data"])
    sym = {x.key: x for x in arms["symbol"]}
    assert prov["release"] == "2016_02_22" and len(sym) == 120
    assert sym["345"].term == "apolipoprotein C-III" and sym["345"].target == "APOC3" and sym["345"].popularity == 3
    assert {x.key: x.target for x in arms["geneid"]}["345"] == "345"
    evil = tmp_path / "genes.py"
    evil.write_text("import os\nos.system('touch pwned')\nGENEID2NT = {1: NtData(GeneID=1, Symbol=__import__('os').getcwd(), description='x')}\n")
    with pytest.raises(ValueError):  # a call inside a record is not a literal: refused, never run
        S.read_gene_table(evil)
    assert not (tmp_path / "pwned").exists()


def test_go_without_the_debian_files_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTELAB_BIOMED_DATA", str(tmp_path))
    monkeypatch.setattr(S, "find_go_files", lambda: (None, None))
    with pytest.raises(RotelabError, match="GO is not installed: .*r-bioc-go.db"):
        S.load_go()


def test_go_reads_terms_synonyms_and_annotation_counts(tmp_path):
    go, org = tmp_path / "GO.sqlite", tmp_path / "org.sqlite"
    c = sqlite3.connect(go)
    c.executescript("""CREATE TABLE go_term (_id INTEGER, go_id TEXT, term TEXT, ontology TEXT, definition TEXT);
        CREATE TABLE go_synonym (_id INTEGER, synonym TEXT, secondary TEXT, like_go_id INTEGER);
        CREATE TABLE go_obsolete (go_id TEXT, term TEXT, ontology TEXT, definition TEXT);
        CREATE TABLE metadata (name TEXT, value TEXT);
        INSERT INTO go_term VALUES (1, 'all', 'all', 'universal', ''), (2, 'GO:0000001', 'mitochondrion inheritance', 'BP', ''), (3, 'GO:0000002', 'old', 'BP', '');
        INSERT INTO go_synonym VALUES (2, 'mitochondrial inheritance', NULL, 0), (2, 'GO:0000099', 'GO:0000099', 1);
        INSERT INTO go_obsolete VALUES ('GO:0000002', 'old', 'BP', '');
        INSERT INTO metadata VALUES ('GOSOURCEDATE', '2022-07-01');""")
    c.commit(); c.close()
    c = sqlite3.connect(org)
    c.executescript("CREATE TABLE go (_id INTEGER, go_id TEXT, evidence TEXT, category TEXT); INSERT INTO go VALUES (1, 'GO:0000001', 'IDA', 'BP'), (2, 'GO:0000001', 'IEA', 'BP'), (2, 'GO:0000001', 'IDA', 'BP');")
    c.commit(); c.close()
    arms, prov = S.load_go(go, org)
    assert arms["go"] == [S.Entry("GO:0000001", "mitochondrion inheritance", "GO:0000001", ("mitochondrial inheritance",), 2.0)]
    assert prov["release"] == "2022-07-01"
    arms, prov = S.load_go(go, None)
    assert arms["go"][0].popularity == 0 and "without popularity bins" in prov["popularity_reason"]


def test_synthetic_ids_derived_are_initials_arbitrary_are_random_and_unique():
    arms, _ = S.load_synthetic(300, seed=1)
    der, arb = arms["derived"], arms["arbitrary"]
    assert [e.key for e in der] == [e.key for e in arb] and len({e.term for e in der}) == 300
    assert all(e.target == "".join(w[0] for w in e.term.split()) for e in der)
    assert len({e.target for e in der}) == 300 and len({e.target for e in arb}) == 300  # initials name one term
    assert sum(a.target == d.target for a, d in zip(arb, der)) == 0
    assert S.load_synthetic(300, seed=1) == (arms, _) and S.load_synthetic(300, seed=2)[0] != arms
