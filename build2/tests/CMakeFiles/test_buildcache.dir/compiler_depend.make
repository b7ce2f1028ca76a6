# Empty compiler generated dependencies file for test_buildcache.
# This may be replaced when dependencies are built.
