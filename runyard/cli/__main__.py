"""``python -m runyard.cli``: the same as the ``runyard`` command."""

from runyard.cli import main

if __name__ == "__main__":
    main()
