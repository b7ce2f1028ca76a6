file(REMOVE_RECURSE
  "CMakeFiles/test_ocispec.dir/unit/test_ocispec.c.o"
  "CMakeFiles/test_ocispec.dir/unit/test_ocispec.c.o.d"
  "test_ocispec"
  "test_ocispec.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_ocispec.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
