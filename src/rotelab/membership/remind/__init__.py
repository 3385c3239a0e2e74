"""REMIND (Cohen, Nemcovsky, Mendelson, arXiv 2511.04228): is unlearned data really gone?

    api.py        remind(): validate, load, open the run folder, run
    suite.py      features per sample (landscape + pointwise baselines), out-of-fold classification
    landscape.py  the input loss landscape of one sample and the features read from it
    classify.py   the classifier, its folds and the forgotten-vs-holdout figures
    figures.py    the landscape picture and the ROC curves
    curve.py      the figures against the number of variants K (nested subsets of one probe)
    report.py     the 3-way tables (per-state AUCs, confusion matrix) of the report section
"""
