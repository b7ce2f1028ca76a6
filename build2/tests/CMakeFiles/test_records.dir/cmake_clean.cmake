file(REMOVE_RECURSE
  "CMakeFiles/test_records.dir/unit/test_records.c.o"
  "CMakeFiles/test_records.dir/unit/test_records.c.o.d"
  "test_records"
  "test_records.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_records.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
