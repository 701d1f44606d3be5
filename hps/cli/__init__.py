"""The ``hps`` command line: the server (``serve``, ``db``), workers (``worker``, ``demo``), and the client
commands (``study``, ``schedule``, ``token``, ``report``). Nothing imports it."""
