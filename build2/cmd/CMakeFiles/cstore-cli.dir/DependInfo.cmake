
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/i10/cmd/build.c" "cmd/CMakeFiles/cstore-cli.dir/build.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/build.c.o.d"
  "/work/wt/i10/cmd/build_output.c" "cmd/CMakeFiles/cstore-cli.dir/build_output.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/build_output.c.o.d"
  "/work/wt/i10/cmd/export.c" "cmd/CMakeFiles/cstore-cli.dir/export.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/export.c.o.d"
  "/work/wt/i10/cmd/gc.c" "cmd/CMakeFiles/cstore-cli.dir/gc.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/gc.c.o.d"
  "/work/wt/i10/cmd/images.c" "cmd/CMakeFiles/cstore-cli.dir/images.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/images.c.o.d"
  "/work/wt/i10/cmd/load.c" "cmd/CMakeFiles/cstore-cli.dir/load.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/load.c.o.d"
  "/work/wt/i10/cmd/main.c" "cmd/CMakeFiles/cstore-cli.dir/main.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/main.c.o.d"
  "/work/wt/i10/cmd/opt.c" "cmd/CMakeFiles/cstore-cli.dir/opt.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/opt.c.o.d"
  "/work/wt/i10/cmd/progress.c" "cmd/CMakeFiles/cstore-cli.dir/progress.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/progress.c.o.d"
  "/work/wt/i10/cmd/run.c" "cmd/CMakeFiles/cstore-cli.dir/run.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/run.c.o.d"
  "/work/wt/i10/cmd/runflags.c" "cmd/CMakeFiles/cstore-cli.dir/runflags.c.o" "gcc" "cmd/CMakeFiles/cstore-cli.dir/runflags.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/i10/build2/builder/CMakeFiles/csbuild.dir/DependInfo.cmake"
  "/work/wt/i10/build2/store/CMakeFiles/cstore.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
