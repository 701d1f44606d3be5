"""``python -m hps.cli``: the ``hps`` command."""

from hps.cli.main import main

main()
