file(REMOVE_RECURSE
  "CMakeFiles/test_dockerfile.dir/unit/test_dockerfile.c.o"
  "CMakeFiles/test_dockerfile.dir/unit/test_dockerfile.c.o.d"
  "test_dockerfile"
  "test_dockerfile.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_dockerfile.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
