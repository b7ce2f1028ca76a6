file(REMOVE_RECURSE
  "CMakeFiles/test_export.dir/unit/test_export.c.o"
  "CMakeFiles/test_export.dir/unit/test_export.c.o.d"
  "test_export"
  "test_export.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_export.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
