file(REMOVE_RECURSE
  "CMakeFiles/testutil.dir/unit/testutil.c.o"
  "CMakeFiles/testutil.dir/unit/testutil.c.o.d"
  "libtestutil.a"
  "libtestutil.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/testutil.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
