"""`python -m xmodal_keras` runs the `xmodal` command."""

from xmodal_keras.cli import main

raise SystemExit(main())
