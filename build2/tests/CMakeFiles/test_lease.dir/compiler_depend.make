# Empty compiler generated dependencies file for test_lease.
# This may be replaced when dependencies are built.
