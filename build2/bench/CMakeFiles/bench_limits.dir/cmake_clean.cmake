file(REMOVE_RECURSE
  "CMakeFiles/bench_limits.dir/bench_limits.c.o"
  "CMakeFiles/bench_limits.dir/bench_limits.c.o.d"
  "bench_limits"
  "bench_limits.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_limits.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
