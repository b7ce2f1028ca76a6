file(REMOVE_RECURSE
  "CMakeFiles/test_lease.dir/unit/test_lease.c.o"
  "CMakeFiles/test_lease.dir/unit/test_lease.c.o.d"
  "test_lease"
  "test_lease.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_lease.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
