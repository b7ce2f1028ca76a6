# Empty compiler generated dependencies file for test_dockerfile.
# This may be replaced when dependencies are built.
