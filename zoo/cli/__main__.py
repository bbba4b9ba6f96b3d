"""`python -m zoo.cli` runs the same command as `zoo`."""

from zoo.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
