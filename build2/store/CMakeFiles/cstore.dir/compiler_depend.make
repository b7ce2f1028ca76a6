# Empty compiler generated dependencies file for cstore.
# This may be replaced when dependencies are built.
