# Empty compiler generated dependencies file for test_records.
# This may be replaced when dependencies are built.
