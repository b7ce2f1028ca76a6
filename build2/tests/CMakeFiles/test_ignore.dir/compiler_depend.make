# Empty compiler generated dependencies file for test_ignore.
# This may be replaced when dependencies are built.
