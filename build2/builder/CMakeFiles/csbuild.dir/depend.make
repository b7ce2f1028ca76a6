# Empty dependencies file for csbuild.
# This may be replaced when dependencies are built.
