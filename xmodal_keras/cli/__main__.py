"""`python -m xmodal_keras.cli` runs the `xmodal` command, as it did when cli was a module."""

from xmodal_keras.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
