"""One module per ``atmocorrect`` subcommand (see :mod:`atmocorrect.cli`)."""
