"""The books experiment (Ma et al. 2025, *Memorization: A Close Look at Books*) at reduced scale.

``testbed``    excerpts trained at known duplication counts (``rotelab testbed build --preset books``)
``measure``    sliding-window extraction and autoregressive reconstruction of excerpts
``summarize``  per-excerpt and pooled summaries, Spearman(copies, median Jaccard) with its interval
``refusals``   the seeded refusal / instruction texts of the suppression fine-tune
``finetune``   the suppression fine-tune and the LoRA that undoes it
``experiment`` the stages (base, suppressed, + LoRA, weight diff) in a resumable run folder
``plots``, ``table``, ``report``  figures, the plain-text table, the report section
"""
