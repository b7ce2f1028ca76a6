# Empty compiler generated dependencies file for cstore-cli.
# This may be replaced when dependencies are built.
