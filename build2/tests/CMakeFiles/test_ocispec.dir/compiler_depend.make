# Empty compiler generated dependencies file for test_ocispec.
# This may be replaced when dependencies are built.
