"""Dynamic Mode Steering: a memorization probe on the residual stream and probe-driven activation steering."""
