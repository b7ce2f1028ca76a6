# Empty dependencies file for bench_parse.
# This may be replaced when dependencies are built.
