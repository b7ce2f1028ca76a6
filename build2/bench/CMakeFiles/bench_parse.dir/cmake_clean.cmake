file(REMOVE_RECURSE
  "CMakeFiles/bench_parse.dir/bench_parse.c.o"
  "CMakeFiles/bench_parse.dir/bench_parse.c.o.d"
  "bench_parse"
  "bench_parse.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_parse.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
