# Empty compiler generated dependencies file for testutil.
# This may be replaced when dependencies are built.
