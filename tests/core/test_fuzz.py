"""Property tests: the JSONL reader never crashes, and a run killed anywhere resumes to the same result."""

import json
import signal
import subprocess
import sys
import textwrap
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotelab.core.data import read_jsonl
from rotelab.errors import RotelabError

_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=5)
_rows = st.one_of(
    st.fixed_dictionaries({"text": st.text()}, optional={"id": st.one_of(st.text(), st.integers(), st.none()), "label": _json_values}),
    st.dictionaries(st.text(max_size=6), _json_values, max_size=4),
    _json_values,
)
_lines = st.lists(st.one_of(_rows.map(lambda r: json.dumps(r)), st.text(max_size=30)), max_size=6)


def _check(path) -> None:
    try:
        samples = read_jsonl(path, role="members")
    except RotelabError as e:  # one line, naming the file
        assert "\n" not in str(e) and str(e).startswith(str(path))
        return
    assert samples and len({s.id for s in samples}) == len(samples)
    for s in samples:
        assert isinstance(s.text, str) and s.text.strip()
        s.text.encode("utf-8")  # every accepted text can be tokenized


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_lines)
def test_jsonl_reader_returns_samples_or_one_line_error(tmp_path, lines):
    p = tmp_path / "x.jsonl"
    p.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    _check(p)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_jsonl_reader_survives_arbitrary_bytes(tmp_path, raw):
    p = tmp_path / "x.jsonl"
    p.write_bytes(raw)
    _check(p)


# A job of five steps, each slow enough to be killed inside; its results are a pure function of
# the inputs, so a resumed run must end equal to an uninterrupted one.
JOB = textwrap.dedent("""
    import sys, time
    import numpy as np
    from rotelab.core.runs import open_run
    from rotelab.core.io import save_npy, load_npy

    out, data = sys.argv[1], sys.argv[2]
    with open_run(out, "job", {"k": 3}, seed=1, inputs={"data": data}) as run:
        x = np.frombuffer(open(data, "rb").read(), dtype=np.uint8).astype(float)
        for i in range(5):
            def go(i=i):
                time.sleep(0.05)
                save_npy(run.file(f"step{i}.npy"), x * (i + 1) + 3)
            run.step(f"s{i}", go)
        total = sum(load_npy(run.file(f"step{i}.npy")).sum() for i in range(5))
        run.write_json("result.json", {"total": total})
""")


def _run(out, data, *, kill_after=None):
    p = subprocess.Popen([sys.executable, "-c", JOB, str(out), str(data)], stderr=subprocess.PIPE)
    if kill_after is None:
        assert p.wait() == 0, p.stderr.read().decode()
        return
    time.sleep(kill_after)
    p.send_signal(signal.SIGKILL)
    p.wait()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_after=st.floats(min_value=0.0, max_value=1.2))
def test_a_run_killed_at_any_point_resumes_to_the_uninterrupted_result(tmp_path_factory, kill_after):
    root = tmp_path_factory.mktemp("kill")
    data = root / "data.bin"
    data.write_bytes(bytes(range(50)))
    _run(root / "clean", data)
    _run(root / "killed", data, kill_after=kill_after)
    _run(root / "killed", data)  # resume
    want = json.loads((root / "clean" / "result.json").read_text())
    assert json.loads((root / "killed" / "result.json").read_text()) == want
    leftovers = [f.name for f in (root / "killed").iterdir() if f.name.endswith(".tmp")]
    assert not leftovers  # atomic writes leave no half files behind
