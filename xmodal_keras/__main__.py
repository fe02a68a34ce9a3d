"""`python -m xmodal_keras` runs the `xmodal` command."""

from xmodal_keras.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
