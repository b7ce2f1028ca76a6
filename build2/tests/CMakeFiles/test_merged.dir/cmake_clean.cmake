file(REMOVE_RECURSE
  "CMakeFiles/test_merged.dir/unit/test_merged.c.o"
  "CMakeFiles/test_merged.dir/unit/test_merged.c.o.d"
  "test_merged"
  "test_merged.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_merged.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
