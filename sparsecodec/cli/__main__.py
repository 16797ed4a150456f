"""``python -m sparsecodec.cli``: the ``spev`` command."""

from sparsecodec.cli import main

main()
