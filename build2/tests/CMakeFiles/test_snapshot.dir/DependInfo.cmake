
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/i10/tests/unit/test_snapshot.c" "tests/CMakeFiles/test_snapshot.dir/unit/test_snapshot.c.o" "gcc" "tests/CMakeFiles/test_snapshot.dir/unit/test_snapshot.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/i10/build2/tests/CMakeFiles/testutil.dir/DependInfo.cmake"
  "/work/wt/i10/build2/store/CMakeFiles/cstore.dir/DependInfo.cmake"
  "/work/wt/i10/build2/builder/CMakeFiles/csbuild.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
