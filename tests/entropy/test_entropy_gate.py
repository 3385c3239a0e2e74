import math

import pytest
import torch

from rotelab.entropy.gapt import COMPRESS, MEMORISE, Gate, GateConfig, compress_loss, middle_layers, rotate_layer


def run(gate: Gate, seq: list[tuple[float, float]]) -> list[int]:
    return [gate.update(ce, mbe) for ce, mbe in seq]


def test_relative_gate_compresses_after_ce_plateau_of_p_m_steps():
    g = Gate(GateConfig(p_m=3, p_a=100))
    phases = run(g, [(2.0, 1.0)] * 3)  # step 0: no minimum yet (gain 0) -> counts as plateau
    assert phases == [MEMORISE, MEMORISE, COMPRESS]
    assert g.switches == [{"step": 2, "to_phase": COMPRESS, "reason": "ce_plateau"}]


def test_relative_gate_stays_memorising_while_ce_keeps_improving():
    g = Gate(GateConfig(p_m=2, tau_m=0.01))
    phases = run(g, [(10.0 * 0.9**i, 1.0) for i in range(20)])  # 10% gain each step > tau_m
    assert phases[1:] == [MEMORISE] * 19 and not g.switches[1:] and g.s_m == 0


def test_relative_gate_returns_when_mbe_plateaus():
    g = Gate(GateConfig(p_m=1, p_a=3, tau_a=0.01))
    phases = run(g, [(2.0, 1.0), (2.0, 0.5), (2.0, 0.5), (2.0, 0.5), (2.0, 0.5)])
    # step 0 -> compress; step 1: MBE gain 0.5 resets s_a; steps 2-4 plateau -> back at step 4
    assert phases == [COMPRESS, COMPRESS, COMPRESS, COMPRESS, MEMORISE]
    assert [s["reason"] for s in g.switches] == ["ce_plateau", "mbe_plateau"]


def test_relative_gate_leaves_compression_on_a_ce_spike_at_once():
    g = Gate(GateConfig(p_m=1, p_a=100, tau_spike=0.1))
    phases = run(g, [(2.0, 1.0), (2.1, 0.9), (2.3, 0.8)])  # 2.3 is 15% above the minimum 2.0
    assert phases == [COMPRESS, COMPRESS, MEMORISE]
    assert g.switches[-1] == {"step": 2, "to_phase": MEMORISE, "reason": "ce_spike"}


def test_relative_gate_minima_are_never_reset():
    g = Gate(GateConfig(p_m=1, p_a=1))
    run(g, [(1.0, 1.0), (3.0, 3.0), (3.0, 3.0)])
    assert g.ce_min == 1.0 and g.mbe_min == 1.0


def test_absolute_gate_resets_minima_on_entering_compression():
    g = Gate(GateConfig(variant="absolute", p_m=2, p_a=100, delta=0.01))
    # step 0 counts as an improvement (E_min − CE = ∞ > δ); steps 1-2 plateau -> compress at step 2
    assert run(g, [(2.0, 1.0)] * 3) == [MEMORISE, MEMORISE, COMPRESS]
    assert g.phase == COMPRESS and math.isinf(g.ce_min) and math.isinf(g.mbe_min)


def test_absolute_gate_spike_is_measured_within_the_compression_phase():
    g = Gate(GateConfig(variant="absolute", p_m=2, p_a=100, tau_spike=0.1))
    # CE reached 1.0 in phase 1; in phase 2 its minimum restarts at 3.0, so 3.2 is no spike, 3.4 is
    phases = run(g, [(1.0, 1.0)] * 3 + [(3.0, 1.0), (3.2, 1.0), (3.4, 1.0)])
    assert phases == [MEMORISE, MEMORISE, COMPRESS, COMPRESS, COMPRESS, MEMORISE]
    assert g.switches[-1]["reason"] == "ce_spike"
    rel = Gate(GateConfig(variant="relative", p_m=2, p_a=100, tau_spike=0.1))
    assert run(rel, [(1.0, 1.0), (1.0, 1.0), (3.0, 1.0)])[-1] == MEMORISE  # relative: spike vs the global 1.0


def test_absolute_gate_returns_after_mbe_stalls_by_delta():
    g = Gate(GateConfig(variant="absolute", p_m=1, p_a=2, delta=0.1))
    phases = run(g, [(1.0, 1.0), (1.0, 1.0), (1.0, 0.5), (1.0, 0.45), (1.0, 0.42)])
    # step 1 -> compress; step 2: first MBE of the phase (min = ∞) resets; gains 0.05, 0.03 < δ -> back
    assert phases == [MEMORISE, COMPRESS, COMPRESS, COMPRESS, MEMORISE]


def test_gate_config_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        GateConfig(variant="spike")


def test_rotation_cycles_middle_blocks_and_falls_back_for_shallow_models():
    assert [rotate_layer(s, 5) for s in range(7)] == [2, 3, 4, 2, 3, 4, 2]
    assert middle_layers(2) == [1, 2] and middle_layers(3) == [2]


def test_compress_loss_floor_smooth_and_nonfinite_fallback():
    ce = torch.tensor(2.0)
    assert compress_loss(ce, torch.tensor(0.0)).item() == pytest.approx(2.0 + 1e-5)
    assert compress_loss(ce, torch.tensor(1.5), weight=2.0).item() == pytest.approx(5.0)
    assert compress_loss(ce, torch.tensor(1.5), weight=2.0, smooth=True).item() == pytest.approx(5.0, abs=1e-3)
    assert compress_loss(ce, torch.tensor(float("nan"))).item() == 2.0
