"""`python -m alertd` runs the command line."""

from alertd.cli import main

main()
