file(REMOVE_RECURSE
  "CMakeFiles/test_load.dir/unit/test_load.c.o"
  "CMakeFiles/test_load.dir/unit/test_load.c.o.d"
  "test_load"
  "test_load.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_load.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
