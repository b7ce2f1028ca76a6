# CMake generated Testfile for 
# Source directory: /work/wt/i10
# Build directory: /work/wt/i10/build2
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
subdirs("store")
subdirs("builder")
subdirs("cmd")
subdirs("tests")
subdirs("bench")
