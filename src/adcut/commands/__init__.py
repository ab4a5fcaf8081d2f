"""One module per ``adcut`` subcommand: argument parsing and printing only, the work lives elsewhere."""
