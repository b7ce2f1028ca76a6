file(REMOVE_RECURSE
  "libtestutil.a"
)
