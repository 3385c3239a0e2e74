"""Models behind inference servers: ``rotelab server check`` (what a server can do, before an
audit trusts it). The backend itself is :mod:`rotelab.core.server`; every model command takes it
with ``--server URL --server-model NAME``."""
