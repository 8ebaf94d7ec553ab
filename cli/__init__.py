"""The ``genmix`` command: science (``run``, ``mix``) and service (``serve``, ``worker``, ``apikey``, ``db``)."""
