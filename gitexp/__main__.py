"""`python -m gitexp` is `git exp`."""

from gitexp.cli import main

main()
