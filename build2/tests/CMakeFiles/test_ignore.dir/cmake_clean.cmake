file(REMOVE_RECURSE
  "CMakeFiles/test_ignore.dir/unit/test_ignore.c.o"
  "CMakeFiles/test_ignore.dir/unit/test_ignore.c.o.d"
  "test_ignore"
  "test_ignore.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_ignore.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
