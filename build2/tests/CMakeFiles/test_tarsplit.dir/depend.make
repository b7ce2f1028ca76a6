# Empty dependencies file for test_tarsplit.
# This may be replaced when dependencies are built.
