file(REMOVE_RECURSE
  "CMakeFiles/test_buildcache.dir/unit/test_buildcache.c.o"
  "CMakeFiles/test_buildcache.dir/unit/test_buildcache.c.o.d"
  "test_buildcache"
  "test_buildcache.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_buildcache.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
