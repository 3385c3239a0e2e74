"""Text-to-image diffusion memorization (Finding Dori): a testbed trained here, replication,
Wen et al. detection, NeMo and Wanda pruning mitigations, DoRI trigger search, locality
diagnostics and adversarial fine-tuning.

Entry points: :mod:`rotelab.diffusion.api` (``testbed_build``, ``detect``, ``mitigate``, ``dori``,
``locality``); mitigations plug in through :data:`rotelab.diffusion.mitigate.MITIGATIONS`."""
