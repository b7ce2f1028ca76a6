# Empty compiler generated dependencies file for bench_limits.
# This may be replaced when dependencies are built.
