file(REMOVE_RECURSE
  "../cstore"
  "../cstore.pdb"
  "CMakeFiles/cstore-cli.dir/build.c.o"
  "CMakeFiles/cstore-cli.dir/build.c.o.d"
  "CMakeFiles/cstore-cli.dir/build_output.c.o"
  "CMakeFiles/cstore-cli.dir/build_output.c.o.d"
  "CMakeFiles/cstore-cli.dir/export.c.o"
  "CMakeFiles/cstore-cli.dir/export.c.o.d"
  "CMakeFiles/cstore-cli.dir/gc.c.o"
  "CMakeFiles/cstore-cli.dir/gc.c.o.d"
  "CMakeFiles/cstore-cli.dir/images.c.o"
  "CMakeFiles/cstore-cli.dir/images.c.o.d"
  "CMakeFiles/cstore-cli.dir/load.c.o"
  "CMakeFiles/cstore-cli.dir/load.c.o.d"
  "CMakeFiles/cstore-cli.dir/main.c.o"
  "CMakeFiles/cstore-cli.dir/main.c.o.d"
  "CMakeFiles/cstore-cli.dir/opt.c.o"
  "CMakeFiles/cstore-cli.dir/opt.c.o.d"
  "CMakeFiles/cstore-cli.dir/progress.c.o"
  "CMakeFiles/cstore-cli.dir/progress.c.o.d"
  "CMakeFiles/cstore-cli.dir/run.c.o"
  "CMakeFiles/cstore-cli.dir/run.c.o.d"
  "CMakeFiles/cstore-cli.dir/runflags.c.o"
  "CMakeFiles/cstore-cli.dir/runflags.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/cstore-cli.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
