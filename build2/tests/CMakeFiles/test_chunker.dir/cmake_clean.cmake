file(REMOVE_RECURSE
  "CMakeFiles/test_chunker.dir/unit/test_chunker.c.o"
  "CMakeFiles/test_chunker.dir/unit/test_chunker.c.o.d"
  "test_chunker"
  "test_chunker.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_chunker.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
