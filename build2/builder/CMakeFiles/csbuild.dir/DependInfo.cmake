
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/i10/builder/build.c" "builder/CMakeFiles/csbuild.dir/build.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build.c.o.d"
  "/work/wt/i10/builder/build_config.c" "builder/CMakeFiles/csbuild.dir/build_config.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_config.c.o.d"
  "/work/wt/i10/builder/build_copy.c" "builder/CMakeFiles/csbuild.dir/build_copy.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_copy.c.o.d"
  "/work/wt/i10/builder/build_instr.c" "builder/CMakeFiles/csbuild.dir/build_instr.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_instr.c.o.d"
  "/work/wt/i10/builder/build_plan.c" "builder/CMakeFiles/csbuild.dir/build_plan.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_plan.c.o.d"
  "/work/wt/i10/builder/build_progress.c" "builder/CMakeFiles/csbuild.dir/build_progress.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_progress.c.o.d"
  "/work/wt/i10/builder/build_run.c" "builder/CMakeFiles/csbuild.dir/build_run.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_run.c.o.d"
  "/work/wt/i10/builder/build_sched.c" "builder/CMakeFiles/csbuild.dir/build_sched.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_sched.c.o.d"
  "/work/wt/i10/builder/build_secret.c" "builder/CMakeFiles/csbuild.dir/build_secret.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_secret.c.o.d"
  "/work/wt/i10/builder/build_stage.c" "builder/CMakeFiles/csbuild.dir/build_stage.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/build_stage.c.o.d"
  "/work/wt/i10/builder/copy.c" "builder/CMakeFiles/csbuild.dir/copy.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/copy.c.o.d"
  "/work/wt/i10/builder/copy_ctx.c" "builder/CMakeFiles/csbuild.dir/copy_ctx.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/copy_ctx.c.o.d"
  "/work/wt/i10/builder/copy_layer.c" "builder/CMakeFiles/csbuild.dir/copy_layer.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/copy_layer.c.o.d"
  "/work/wt/i10/builder/copy_src.c" "builder/CMakeFiles/csbuild.dir/copy_src.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/copy_src.c.o.d"
  "/work/wt/i10/builder/copy_stat.c" "builder/CMakeFiles/csbuild.dir/copy_stat.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/copy_stat.c.o.d"
  "/work/wt/i10/builder/copy_user.c" "builder/CMakeFiles/csbuild.dir/copy_user.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/copy_user.c.o.d"
  "/work/wt/i10/builder/df_check.c" "builder/CMakeFiles/csbuild.dir/df_check.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_check.c.o.d"
  "/work/wt/i10/builder/df_expand.c" "builder/CMakeFiles/csbuild.dir/df_expand.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_expand.c.o.d"
  "/work/wt/i10/builder/df_health.c" "builder/CMakeFiles/csbuild.dir/df_health.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_health.c.o.d"
  "/work/wt/i10/builder/df_heredoc.c" "builder/CMakeFiles/csbuild.dir/df_heredoc.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_heredoc.c.o.d"
  "/work/wt/i10/builder/df_node.c" "builder/CMakeFiles/csbuild.dir/df_node.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_node.c.o.d"
  "/work/wt/i10/builder/df_parse.c" "builder/CMakeFiles/csbuild.dir/df_parse.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_parse.c.o.d"
  "/work/wt/i10/builder/df_stage.c" "builder/CMakeFiles/csbuild.dir/df_stage.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_stage.c.o.d"
  "/work/wt/i10/builder/df_words.c" "builder/CMakeFiles/csbuild.dir/df_words.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/df_words.c.o.d"
  "/work/wt/i10/builder/fetch.c" "builder/CMakeFiles/csbuild.dir/fetch.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/fetch.c.o.d"
  "/work/wt/i10/builder/ignore.c" "builder/CMakeFiles/csbuild.dir/ignore.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/ignore.c.o.d"
  "/work/wt/i10/builder/imagerun.c" "builder/CMakeFiles/csbuild.dir/imagerun.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/imagerun.c.o.d"
  "/work/wt/i10/builder/lex.c" "builder/CMakeFiles/csbuild.dir/lex.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/lex.c.o.d"
  "/work/wt/i10/builder/lex_env.c" "builder/CMakeFiles/csbuild.dir/lex_env.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/lex_env.c.o.d"
  "/work/wt/i10/builder/lex_pat.c" "builder/CMakeFiles/csbuild.dir/lex_pat.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/lex_pat.c.o.d"
  "/work/wt/i10/builder/ocispec.c" "builder/CMakeFiles/csbuild.dir/ocispec.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/ocispec.c.o.d"
  "/work/wt/i10/builder/run.c" "builder/CMakeFiles/csbuild.dir/run.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/run.c.o.d"
  "/work/wt/i10/builder/run_mount.c" "builder/CMakeFiles/csbuild.dir/run_mount.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/run_mount.c.o.d"
  "/work/wt/i10/builder/run_mountflags.c" "builder/CMakeFiles/csbuild.dir/run_mountflags.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/run_mountflags.c.o.d"
  "/work/wt/i10/builder/run_reaper.c" "builder/CMakeFiles/csbuild.dir/run_reaper.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/run_reaper.c.o.d"
  "/work/wt/i10/builder/run_supervise.c" "builder/CMakeFiles/csbuild.dir/run_supervise.c.o" "gcc" "builder/CMakeFiles/csbuild.dir/run_supervise.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/i10/build2/store/CMakeFiles/cstore.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
