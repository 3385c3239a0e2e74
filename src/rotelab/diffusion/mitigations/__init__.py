"""One module per registered mitigation (``@register("name", ...)`` from :mod:`rotelab.diffusion.mitigate`).

Modules here import torch only inside methods: the registry imports all of them to list
``--method`` choices when the command line starts.
"""
