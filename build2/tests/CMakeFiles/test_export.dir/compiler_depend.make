# Empty compiler generated dependencies file for test_export.
# This may be replaced when dependencies are built.
