# Empty compiler generated dependencies file for test_statcache.
# This may be replaced when dependencies are built.
