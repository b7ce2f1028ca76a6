file(REMOVE_RECURSE
  "CMakeFiles/test_tarsplit.dir/unit/test_tarsplit.c.o"
  "CMakeFiles/test_tarsplit.dir/unit/test_tarsplit.c.o.d"
  "test_tarsplit"
  "test_tarsplit.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_tarsplit.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
