file(REMOVE_RECURSE
  "CMakeFiles/test_statcache.dir/unit/test_statcache.c.o"
  "CMakeFiles/test_statcache.dir/unit/test_statcache.c.o.d"
  "test_statcache"
  "test_statcache.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_statcache.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
