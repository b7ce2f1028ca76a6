file(REMOVE_RECURSE
  "libcsbuild.a"
)
