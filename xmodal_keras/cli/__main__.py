"""`python -m xmodal_keras.cli` runs the `xmodal` command, as it did when cli was a module."""

from xmodal_keras.cli import main

raise SystemExit(main())
