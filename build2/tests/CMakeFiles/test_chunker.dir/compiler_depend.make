# Empty compiler generated dependencies file for test_chunker.
# This may be replaced when dependencies are built.
