# Empty dependencies file for test_merged.
# This may be replaced when dependencies are built.
