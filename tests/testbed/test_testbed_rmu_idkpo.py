"""RMU and IdkPO: their objectives against their formulas, RMU's hooks leave nothing behind, and
each really unlearns the tiny testbed (forget loss up to 1.0x, retain rising less; RMU's past the
holdout's, IdkPO's answers overtaken by a refusal); verification during unlearning."""

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from rotelab.cli import app
from rotelab.testbed.methods import IDK_ANSWERS, METHODS, RMU, IdkPO, block_output, idkpo_loss, rmu_loss
from rotelab.testbed.unlearn import UnlearnConfig


def test_rmu_loss_matches_its_formula_by_hand():
    hf = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])  # third token padded
    mf = torch.tensor([[1, 1, 0]])
    target = torch.tensor([1.0, 0.0])
    hr = torch.tensor([[[1.0, 1.0]], [[2.0, 0.0]]])
    hr_ref = torch.tensor([[[0.0, 1.0]], [[0.0, 0.0]]])
    mr = torch.tensor([[1], [1]])
    forget = ((0**2 + 2**2) / 2 + (2**2 + 4**2) / 2) / 2  # mean over the 2 valid tokens of mean over d of (h - c u)^2 = 5.5
    retain = ((1**2 + 0) / 2 + (2**2 + 0) / 2) / 2  # 1.25
    got = rmu_loss(hf, mf, target, hr, hr_ref, mr, alpha=3.0, gamma=2.0)
    assert float(got) == pytest.approx(2.0 * forget + 3.0 * retain)


def test_idkpo_loss_matches_dpo_and_pushes_the_true_answer_down():
    win, win_ref = torch.tensor([-5.0, -8.0]), torch.tensor([-6.0, -7.0])
    lose = torch.tensor([-2.0, -3.0], requires_grad=True)
    lose_ref = torch.tensor([-2.5, -1.0])
    beta = 0.5
    margin = (win - win_ref) - (lose - lose_ref)
    want = -(2 / beta) * torch.log(torch.sigmoid(beta * margin)).mean()
    got = idkpo_loss(win, win_ref, lose, lose_ref, beta)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    got.backward()
    assert (lose.grad > 0).all()  # minimising lowers log pi(y_f | x)


def test_registry_and_cli_help_list_the_new_methods():
    assert METHODS["rmu"].obj is RMU and METHODS["idkpo"].obj is IdkPO
    r = CliRunner().invoke(app, ["testbed", "unlearn", "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0 and "rmu" in r.stdout and "idkpo" in r.stdout and "--verify-every" in r.stdout and "--steering-coeff" in r.stdout


@pytest.fixture(scope="module")
def job(tiny_testbed, tmp_path_factory):
    from rotelab.core.runs import RunFolder
    from rotelab.testbed.unlearn import Job

    run = RunFolder(tmp_path_factory.mktemp("job"), command="testbed unlearn", options={}, seed=0)
    return Job(tiny_testbed, UnlearnConfig(method="rmu"), run, progress=False)


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_rmu_reads_block_outputs_and_leaves_no_hook_behind(job):
    import copy

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(job.testbed / "model").eval()
    ref = copy.deepcopy(model)
    x = torch.tensor([job.ids["forget"][0]])
    mask = torch.ones_like(x)
    before = model(input_ids=x).logits
    hidden = model(input_ids=x, output_hidden_states=True).hidden_states
    own = _hooks(model), _hooks(ref)  # transformers' own, if any
    assert torch.allclose(block_output(model, 0, x, mask), hidden[1], atol=1e-6)  # block 0's output
    rmu = RMU(UnlearnConfig(method="rmu", layer=-1))
    loss = rmu.step_loss(job, model, [0, 1, 2], [0, 1, 2], ref)
    loss.backward()
    assert (_hooks(model), _hooks(ref)) == own
    assert torch.equal(model(input_ids=x).logits, before)
    names = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    mlp = {n for n, p in model.named_parameters() if ".mlp." in n}  # tiny: 2 blocks, so l - 2 .. l = both
    assert {id(p) for p in rmu.trainable(model)} == {id(p) for n, p in model.named_parameters() if n in mlp}
    assert names >= mlp and rmu.direction(64).norm() == pytest.approx(1.0)


def test_idkpo_pairs_a_refusal_with_each_facts_question(job):
    idk = IdkPO(UnlearnConfig(method="idkpo"))
    pairs = idk.pairs(job)
    row = job.rows["forget"][0]
    ids, start, alts = pairs[0]
    assert job.tokenizer.decode(ids[start:]).strip() == row["answer"]
    assert len(alts) == len(IDK_ANSWERS)
    assert [job.tokenizer.decode(x[k:]).strip() for x, k in alts] == list(IDK_ANSWERS)
    assert all(x[:k] == ids[:start] for x, k in alts)  # the same question before each answer


def test_rmu_unlearns_the_tiny_testbed(new_method_runs):
    res = new_method_runs["rmu"]
    assert res["checkpoints"]["1.0x"]["reached"] and res["checkpoints"]["1.0x"]["forget"] >= res["targets"]["1.0x"]
    ck, base = res["checkpoints"][res["strongest"]], res["base_losses"]
    assert ck["forget"] > ck["holdout"]  # within the cap, the forget facts read less familiar than never-seen ones
    assert ck["retain"] - base["retain"] < ck["forget"] - base["forget"]


def test_idkpo_unlearns_the_tiny_testbed_by_preferring_a_refusal(new_method_runs, tiny_testbed):
    """IdkPO acts on the answers only, and its refusals spread to every question: the forget facts'
    whole-text loss reaches 1.0x and rises far more than the holdout's, yet stays below it (their
    questions stay memorized); after their questions a refusal now beats the true answer."""
    from rotelab.core.models import load_model
    from rotelab.testbed.splits import read_split
    from rotelab.verify.truth import answer_nll

    res = new_method_runs["idkpo"]
    ck, base = res["checkpoints"]["1.0x"], res["base_losses"]
    assert ck["reached"] and ck["forget"] >= res["targets"]["1.0x"]
    assert ck["forget"] - base["forget"] > 2 * (ck["holdout"] - base["holdout"]) and ck["retain"] - base["retain"] < ck["forget"] - base["forget"]
    rows = read_split(tiny_testbed, "forget")
    prompts = [r["text"][: -len(r["answer"])] for r in rows]
    for folder, prefers_truth in ((tiny_testbed / "model", True), (new_method_runs["root"] / "idkpo" / "checkpoints" / "1.0x", False)):
        lm = load_model(folder)
        truth = answer_nll(lm, prompts, [r["answer"] for r in rows]).mean()
        idk = answer_nll(lm, prompts, [IDK_ANSWERS[0]] * len(rows)).mean()
        assert (truth < idk) == prefers_truth, (folder, truth, idk)


def test_the_cli_runs_rmu_and_idkpo(tiny_testbed, tmp_path):
    for method in ("rmu", "idkpo"):
        r = CliRunner().invoke(app, ["testbed", "unlearn", "--testbed", str(tiny_testbed), "--method", method, "--max-steps", "2", "--out", str(tmp_path / method), "--json", "-q"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["steps"] == 2 and json.loads(r.stdout)["method"] == method


# -- verification during unlearning (the loop's callback hook) ----------------------------------------
EVERY = 10


@pytest.fixture(scope="module")
def new_method_runs(tiny_testbed, tmp_path_factory):
    """RMU (with the verification logged every EVERY steps) and IdkPO on the tiny testbed, through the API."""
    from rotelab.testbed import api

    root = tmp_path_factory.mktemp("new_methods")
    out = {"root": root}
    for method, kw in (("rmu", {"lr": 3e-3, "max_steps": 150, "verify_every": EVERY}), ("idkpo", {"lr": 1e-2, "max_steps": 40})):
        api.unlearn(tiny_testbed, method=method, out=root / method, progress=False, **kw)
        out[method] = json.loads((root / method / "unlearn.json").read_text())
    return out


def test_verify_every_logs_the_figures_and_the_auc_falls(new_method_runs):
    res, root = new_method_runs["rmu"], new_method_runs["root"] / "rmu"
    log = res["verify_log"]
    assert [e["step"] for e in log] == list(range(0, res["steps"] + 1, EVERY))
    first, last = log[0], log[-1]
    assert first["loss_auc"] > 0.95 and first["loss_auc_detects"]  # memorized before unlearning
    assert last["loss_auc"] < first["loss_auc"] - 0.3 and last["forget_loss"] > first["forget_loss"] + 1.0
    assert first["forget_loss"] == pytest.approx(res["base_losses"]["forget"], rel=1e-4)
    assert all(e["loss_auc_ci"][0] <= e["loss_auc"] <= e["loss_auc_ci"][1] for e in log)
    assert (root / "figures" / "unlearning_verify.png").exists()
    assert "Verification during unlearning" in (root / "report.html").read_text()
    assert "verify_log" not in new_method_runs["idkpo"]  # off unless asked
    assert json.loads((root / "manifest.json").read_text())["options"]["verify_every"] == EVERY


def test_callbacks_are_generic_on_the_loop(tiny_testbed, tmp_path):
    """Any StepCallback: it sees step 0 and every step, and its entries land under its name."""
    from rotelab.core.runs import RunFolder
    from rotelab.testbed.unlearn import StepCallback, unlearn

    class Count(StepCallback):
        name = "counts"

        def on_step(self, job, step, model):
            return {"training": model.training} if step % 2 == 0 else None

    run = RunFolder(tmp_path, command="testbed unlearn", options={}, seed=0)
    res = unlearn(tiny_testbed, UnlearnConfig(method="ga", max_steps=5), run, progress=False, callbacks=[Count()])
    assert [e["step"] for e in res["counts"]] == [0, 2, 4]


def test_the_trainer_callback_reads_a_testbed_folder(tiny_testbed):
    from rotelab.testbed.splits import read_split
    from rotelab.verify.callback import VerifyCallback

    cb = VerifyCallback.from_testbed(tiny_testbed, every=5, retain_samples=40)
    assert {k: len(v) for k, v in cb.sets.items()} == {"forget": 30, "holdout": len(read_split(tiny_testbed, "holdout")), "retain": 40}
    ids = cb._token_ids(cb.tokenizer)
    assert cb.tokenizer.decode(ids["forget"][0], skip_special_tokens=True) == read_split(tiny_testbed, "forget")[0]["text"]
